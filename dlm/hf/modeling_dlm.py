"""Hugging Face wrapper: DLMForDiffusionLM (AutoModel) and the save/load used by DiffusionLM.

A checkpoint directory holds config.json (DLMConfig: the full recipe), model.safetensors and, when the model
has one, the tokenizer files. `DiffusionLM.from_pretrained(dir)` rebuilds the model from the config and loads the
weights directly; `AutoModel.from_pretrained(dir)` (after `import dlm.hf`) returns a DLMForDiffusionLM whose
`.model` is that DiffusionLM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from dlm.diffusion_lm import DiffusionLM
from dlm.hf.configuration_dlm import DLMConfig
from dlm.registry import ConfigError
from dlm.types import Prediction

WEIGHTS = "model.safetensors"


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
    """Write config.json + model.safetensors (+ tokenizer) into `path`."""
    model.check_config()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = DLMConfig.from_run_config(model.config, model.vocab_size, model.mask_id)
    config.architectures = [DLMForDiffusionLM.__name__]
    config.save_pretrained(path)
    state = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path / WEIGHTS), metadata={"format": "pt"})
    if save_tokenizer and model.tokenizer is not None:
        model.tokenizer.save_pretrained(path)


def load_diffusion_lm(path: str | Path, *, map_location: str | torch.device = "cpu",
                      load_tokenizer: bool = True) -> DiffusionLM:
    """Rebuild a DiffusionLM from a directory written by save_pretrained; one-line ConfigError if it is broken."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"checkpoint directory not found: {path}")
    for name in ("config.json", WEIGHTS):
        if not (path / name).exists():
            raise ConfigError(f"checkpoint {path} has no {name}; is it a dlm checkpoint written by save_pretrained?")
    try:
        config = DLMConfig.from_pretrained(path)
    except (OSError, ValueError, json.JSONDecodeError) as err:
        raise ConfigError(f"checkpoint {path}: config.json is unreadable ({str(err).splitlines()[0]})") from None
    tokenizer = _load_tokenizer(path) if load_tokenizer else None
    model = DiffusionLM.from_config(config.to_run_config(), config.vocab_size, mask_id=config.mask_id,
                                    tokenizer=tokenizer)
    try:
        state = load_file(str(path / WEIGHTS), device=str(map_location))
    except (SafetensorError, OSError) as err:
        raise ConfigError(f"checkpoint {path}: {WEIGHTS} is corrupt ({err})") from None
    state = {k.removeprefix("model."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(f"checkpoint {path} does not match its config: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}")
    return model.to(map_location)


def _load_tokenizer(path: Path) -> Any:
    if not any((path / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))
