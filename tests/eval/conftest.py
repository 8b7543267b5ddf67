"""Tiny checkpoints for the eval tests: char tokenizer, d_model 32, 2 layers, seq_len 64, a few AdamW steps on
Tiny Shakespeare so the models are better than uniform. Built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dlm
from dlm.data import build_tokenizer, encode, wrap
from dlm.data.paths import CORPUS_DIR, data_dir
from dlm.data.tokenizer import special_tokens

SEQ_LEN = 64
TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", f"model.max_len={SEQ_LEN}",
        f"data.seq_len={SEQ_LEN}"]
VARIANTS = {
    "mdlm": ["objective.name=masked_elbo"],
    "ar": ["objective.name=autoregressive"],
    "udlm": ["objective.name=uniform_elbo", "process.name=uniform", "objective.time_conditioning=true"],
    "sedd": ["objective.name=score_entropy", "objective.time_conditioning=true"],
}
STEPS = {"mdlm": 40, "ar": 40, "udlm": 10, "sedd": 10}


def train_tiny(variant: str, tokenizer, blocks: torch.Tensor, steps: int) -> dlm.DiffusionLM:
    torch.manual_seed(0)
    cfg = dlm.load_config(None, TINY + VARIANTS[variant])
    model = dlm.DiffusionLM.from_config(cfg, vocab_size=len(tokenizer), tokenizer=tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        batch = blocks[torch.randint(0, len(blocks), (16,), generator=gen)]
        opt.zero_grad()
        model.loss(batch, generator=gen).loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """variant -> checkpoint dir, for mdlm, ar, udlm and sedd."""
    text = (CORPUS_DIR / "tinyshakespeare.txt").read_text()
    tokenizer = build_tokenizer("char", [text])
    specials = special_tokens(tokenizer)
    docs = [d for d in text.split("\n\n") if d.strip()][:600]
    blocks = wrap(encode(tokenizer, docs), SEQ_LEN, specials.bos, specials.eos)
    root = tmp_path_factory.mktemp("ckpt")
    out = {}
    for variant in VARIANTS:
        path = root / variant
        train_tiny(variant, tokenizer, blocks, STEPS[variant]).save_pretrained(path)
        out[variant] = path
    return out


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The local data dir (../shared/data or $DLM_DATA_DIR); tests that need it skip when it is missing."""
    root = data_dir()
    if not (root / "ptb" / "ptb.test.txt").is_file():
        pytest.skip(f"local data dir {root} is not present")
    return root
