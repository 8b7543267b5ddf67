"""Tiny untrained teachers with a data config (a local corpus, char tokenizer) for the distillation loop tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dlm
from dlm.data import tokenizer_from_config
from dlm.data.paths import CORPUS_DIR

TINY = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.max_len=16", "data.tokenizer=char",
        "data.seq_len=16", "data.mode=wrap"]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "head.txt"
    path.write_text((CORPUS_DIR / "tinyshakespeare.txt").read_text()[:20_000])
    return path


def make_teacher(path: Path, corpus: Path, objective: str, *overrides: str) -> Path:
    """Save a freshly initialized tiny model of `objective` (seed 0) trained on nothing, with its data config;
    overrides: more config overrides (objective.block_size=4)."""
    cfg = dlm.load_config(None, [*TINY, f"objective.name={objective}", f"data.source={corpus}", *overrides])
    tokenizer = tokenizer_from_config(cfg.data)
    torch.manual_seed(0)
    dlm.DiffusionLM.from_config(cfg, len(tokenizer), tokenizer=tokenizer).save_pretrained(str(path))
    return path
