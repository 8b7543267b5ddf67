"""Hugging Face integration. Importing dlm.hf registers DLMConfig / DLMForDiffusionLM with the Auto classes."""

from transformers import AutoConfig, AutoModel

from dlm.hf.configuration_dlm import DLMConfig
from dlm.hf.modeling_dlm import DLMForDiffusionLM, load_diffusion_lm, save_diffusion_lm

AutoConfig.register(DLMConfig.model_type, DLMConfig, exist_ok=True)
AutoModel.register(DLMConfig, DLMForDiffusionLM, exist_ok=True)

__all__ = ["DLMConfig", "DLMForDiffusionLM", "load_diffusion_lm", "save_diffusion_lm"]
