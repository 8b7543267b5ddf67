"""HF-style weight folders for the small image modules (codec, feature classifier): config.json + model.safetensors.

save_module(module, config, path) writes both; load_module(cls, config_cls, path) builds cls(config_cls(**json))
and loads the weights. Unknown config keys are ignored so older folders keep loading.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlm.registry import ConfigError

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


def save_module(module: nn.Module, config: Any, path: str | Path, model_type: str) -> None:
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_NAME).write_text(json.dumps({"model_type": model_type, **asdict(config)}, indent=2))
    save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, str(path / WEIGHTS_NAME))


def read_config(path: str | Path, config_cls: type, hint: str) -> Any:
    path = Path(path)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise ConfigError(f"{path} is not a {config_cls.__name__} folder (needs {CONFIG_NAME} and {WEIGHTS_NAME}); "
                          f"{hint}")
    raw = json.loads((path / CONFIG_NAME).read_text())
    known = {f.name for f in fields(config_cls)}
    return config_cls(**{k: v for k, v in raw.items() if k in known})


def load_module(cls: type, config_cls: type, path: str | Path, hint: str,
                map_location: str | torch.device = "cpu") -> nn.Module:
    from safetensors.torch import load_file

    module = cls(read_config(path, config_cls, hint))
    module.load_state_dict(load_file(str(Path(path) / WEIGHTS_NAME)))
    return module.to(map_location).eval()
