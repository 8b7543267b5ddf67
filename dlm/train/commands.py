"""`dlm train`: the typed function behind the CLI subcommand (dlm/cli.py parses arguments and calls it)."""

from __future__ import annotations

from typing import Any

from dlm.config import load_config
from dlm.train.loop import train
from dlm.train.resume import resume_config


def train_command(config: str, overrides: list[str] | None = None, resume: bool = False) -> dict[str, Any]:
    """Train the run described by a YAML file, with dotted overrides.

    Args:
        config: the run YAML, e.g. configs/runs/shakespeare_mdlm.yaml.
        overrides: dotted ``section.key=value`` settings applied on top, e.g. ``train.steps=100``.
        resume: continue ``<train.out_dir>`` from its newest loadable checkpoint, with the run's own saved config
            (overrides included) plus the given overrides; only settings listed in dlm/train/resume.py may differ.
            Where it holds no checkpoint yet, start a fresh run (one-line note): one command for a preemptible
            job's first launch and every requeue.

    Returns train()'s summary dict. Raises ConfigError (a one-line message; the CLI prints ``error: <message>``
    and exits 2) for bad input.
    """
    overrides = list(overrides or [])
    cfg = resume_config(config, overrides) if resume else load_config(config, overrides)
    return train(cfg, resume=resume)
