"""DLMConfig: the Hugging Face config of a dlm checkpoint (defined in dlm/pretrained.py, below DiffusionLM, so
that saving and loading need nothing from dlm/hf/)."""

from dlm.pretrained import DLMConfig

__all__ = ["DLMConfig"]
