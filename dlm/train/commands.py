"""`dlm train`: the typed function behind the CLI subcommand (dlm/cli.py parses arguments and calls it)."""

from __future__ import annotations

from typing import Any

from dlm.config import load_config
from dlm.train.loop import train


def train_command(config: str, overrides: list[str] | None = None, resume: bool = False) -> dict[str, Any]:
    """Train the run described by the YAML file `config` with dotted `overrides` (``train.steps=100``).

    resume=True continues from ``<train.out_dir>/checkpoints/latest``. Returns train()'s summary dict.
    Raises ConfigError (a one-line message; the CLI prints ``error: <message>`` and exits 2) for bad input.
    """
    return train(load_config(config, overrides or []), resume=resume)
