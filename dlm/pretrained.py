"""The checkpoint directory of a DiffusionLM: config.json (DLMConfig, the full recipe), model.safetensors and, when
the model has one, the tokenizer files.

`DiffusionLM.save_pretrained` / `from_pretrained` use this module; dlm/hf/ (the Hugging Face Auto classes) sits
above DiffusionLM and re-exports DLMConfig from here, so nothing below DiffusionLM imports it (no import cycle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import PretrainedConfig

from dlm.config import DataConfig, ModelConfig, ObjectiveConfig, ProcessConfig, RunConfig, from_dict, to_dict
from dlm.registry import ConfigError

WEIGHTS = "model.safetensors"
ARCHITECTURE = "DLMForDiffusionLM"  # the AutoModel class of dlm/hf/modeling_dlm.py, named in config.json
T = TypeVar("T")


class DLMConfig(PretrainedConfig):
    """The Hugging Face config of a dlm checkpoint: it holds the whole model recipe, so a checkpoint describes
    itself: backbone sizes, process + schedule, objective (parameterization), vocabulary and mask id."""

    model_type = "dlm"

    def __init__(self, run: dict[str, Any] | None = None, vocab_size: int = 0, mask_id: int | None = None,
                 **kwargs: Any):
        self.run = run or {}
        self.vocab_size = vocab_size
        self.mask_id = mask_id
        super().__init__(**kwargs)

    @classmethod
    def from_run_config(cls, cfg: RunConfig, vocab_size: int, mask_id: int | None) -> DLMConfig:
        sections = to_dict(cfg)
        sections.pop("train")  # how it was trained is not part of what the model is
        return cls(run=sections, vocab_size=vocab_size, mask_id=mask_id)

    def to_run_config(self) -> RunConfig:
        run = self.run
        return RunConfig(
            model=from_dict(ModelConfig, run.get("model"), "model"),
            process=from_dict(ProcessConfig, run.get("process"), "process"),
            objective=from_dict(ObjectiveConfig, run.get("objective"), "objective"),
            data=from_dict(DataConfig, run.get("data"), "data"),
        )


def save_pretrained(model: Any, path: str | Path, *, save_tokenizer: bool = True) -> None:
    """Write config.json + model.safetensors (+ tokenizer) of a DiffusionLM into `path`."""
    model.check_config()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = DLMConfig.from_run_config(model.config, model.vocab_size, model.mask_id)
    config.run["objective"].update(model.objective.state_dict())  # what training changed: e.g. a searched clip
    config.architectures = [ARCHITECTURE]
    config.save_pretrained(path)
    state = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path / WEIGHTS), metadata={"format": "pt"})
    if save_tokenizer and model.tokenizer is not None:
        model.tokenizer.save_pretrained(path)


def load_pretrained(model_class: type[T], path: str | Path, *, map_location: str | torch.device = "cpu",
                    load_tokenizer: bool = True) -> T:
    """Rebuild a `model_class` (DiffusionLM) from a directory written by save_pretrained, through
    model_class.from_config; one-line ConfigError if the directory is broken."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"checkpoint directory not found: {path}")
    for name in ("config.json", WEIGHTS):
        if not (path / name).exists():
            raise ConfigError(f"checkpoint {path} has no {name}; is it a dlm checkpoint written by save_pretrained?")
    _check_dlm_config(path / "config.json")
    try:
        config = DLMConfig.from_pretrained(path)
    except (OSError, ValueError, json.JSONDecodeError) as err:
        raise ConfigError(f"checkpoint {path}: config.json is unreadable ({str(err).splitlines()[0]})") from None
    tokenizer = _load_tokenizer(path, config) if load_tokenizer else None
    model = model_class.from_config(config.to_run_config(), config.vocab_size, mask_id=config.mask_id,
                                   tokenizer=tokenizer)
    try:
        state = load_file(str(path / WEIGHTS), device=str(map_location))
    except (SafetensorError, OSError) as err:
        raise ConfigError(f"checkpoint {path}: {WEIGHTS} is corrupt ({err})") from None
    state = {k.removeprefix("model."): v for k, v in state.items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # size mismatches: config.json describes another model than the weights
        detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err)[:200])
        raise ConfigError(f"checkpoint {path}: {WEIGHTS} does not match config.json ({detail[:200]}); "
                          "was config.json copied from another run?") from None
    if missing or unexpected:
        raise ConfigError(f"checkpoint {path} does not match its config: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}")
    return model.to(map_location)


def _check_dlm_config(file: Path) -> None:
    """One-line ConfigError unless file is a dlm config.json (model_type "dlm" with a run recipe)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"checkpoint {file.parent}: config.json is unreadable ({str(err).splitlines()[0]})") from None
    kind = data.get("model_type") if isinstance(data, dict) else None
    if kind != DLMConfig.model_type or not isinstance(data.get("run"), dict):
        raise ConfigError(f"{file.parent} is not a dlm checkpoint (config.json has model_type {kind!r}, not "
                          f"'{DLMConfig.model_type}'); load a directory written by DiffusionLM.save_pretrained")


def _load_tokenizer(path: Path, config: DLMConfig) -> Any:
    if not any((path / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        return None
    from transformers import AutoTokenizer

    # config= keeps AutoTokenizer from re-reading config.json as an unregistered model type (a warning per load)
    return AutoTokenizer.from_pretrained(str(path), config=config)
