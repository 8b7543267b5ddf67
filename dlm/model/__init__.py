"""The shared backbone."""

from dlm.model.transformer import Transformer

__all__ = ["Transformer"]
