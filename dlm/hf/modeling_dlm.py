"""Hugging Face wrapper: DLMForDiffusionLM (AutoModel) around a DiffusionLM; the checkpoint format is dlm/pretrained.py.

A checkpoint directory holds config.json (DLMConfig: the full recipe), model.safetensors and, when the model
has one, the tokenizer files. `DiffusionLM.from_pretrained(dir)` rebuilds the model from the config and loads the
weights directly; `AutoModel.from_pretrained(dir)` (after `import dlm.hf`) returns a DLMForDiffusionLM whose
`.model` is that DiffusionLM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from dlm.diffusion_lm import DiffusionLM
from dlm.pretrained import DLMConfig, load_pretrained, save_pretrained
from dlm.types import Prediction


class DLMForDiffusionLM(PreTrainedModel):
    """forward(input_ids (B, L), t (B,) | None) -> Prediction, exactly as the wrapped DiffusionLM."""

    config_class = DLMConfig
    base_model_prefix = "model"

    def __init__(self, config: DLMConfig, model: DiffusionLM | None = None):
        super().__init__(config)
        self.model = model or DiffusionLM.from_config(config.to_run_config(), config.vocab_size,
                                                      mask_id=config.mask_id)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, t: torch.Tensor | None = None, **kwargs: Any) -> Prediction:
        return self.model(input_ids, t, **kwargs)

    def _init_weights(self, module: torch.nn.Module) -> None:
        """Weights are initialized by the dlm backbone itself."""


def save_diffusion_lm(model: DiffusionLM, path: str | Path, *, save_tokenizer: bool = True) -> None:
    """Write config.json + model.safetensors (+ tokenizer) into `path` (= model.save_pretrained(path))."""
    save_pretrained(model, path, save_tokenizer=save_tokenizer)


def load_diffusion_lm(path: str | Path, *, map_location: str | torch.device = "cpu",
                      load_tokenizer: bool = True) -> DiffusionLM:
    """Rebuild a DiffusionLM from a directory written by save_pretrained (= DiffusionLM.from_pretrained(path))."""
    return load_pretrained(DiffusionLM, path, map_location=map_location, load_tokenizer=load_tokenizer)
