"""Shared helpers for the training tests: a small corpus and tiny-model overrides (CPU, seconds per run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dlm.data.paths import CORPUS_DIR

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40k characters of the bundled Tiny Shakespeare as a local .txt file."""
    path = tmp_path_factory.mktemp("corpus") / "shakespeare_head.txt"
    path.write_text((CORPUS_DIR / "tinyshakespeare.txt").read_text()[:40_000])
    return path


def tiny_run(out_dir: Path, corpus: Path | str, *extra: str) -> list[str]:
    """Overrides for a tiny masked-diffusion run: 2 layers, d 64, L 32, batch 8, no progress bar."""
    return [
        "model=tiny", f"data.source={corpus}", "data.tokenizer=char", "data.seq_len=32",
        "train.batch_size=8", "train.lr=1e-3", "train.warmup_steps=2", "train.eval_batches=2",
        "train.log_every=1", "train.progress=false", f"train.out_dir={out_dir}", *extra,
    ]


def final_weights(out_dir: Path) -> dict:
    return load_file(str(out_dir / "final" / "model.safetensors"))


def fake_model_dir(path: Path) -> None:
    """A minimal model dir that passes the checkpoint structural check: config.json and readable safetensors."""
    path.mkdir()
    (path / "config.json").write_text("{}")
    save_file({"w": torch.ones(2)}, str(path / "model.safetensors"))
