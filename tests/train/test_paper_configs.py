"""The paper-scale run configs (configs/runs/owt_*.yaml, lm1b_*.yaml) load, hold the papers' settings, build the
110M DiT on the meta device at the real vocabulary, and train a step on the CPU with tiny overrides."""

from __future__ import annotations

import pytest
import torch

from dlm.config import CONFIG_DIR, load_config
from dlm.diffusion_lm import DiffusionLM
from dlm.train.loop import check_config

VOCAB = {"gpt2": 50258, "bert-base-uncased": 30522}  # GPT-2's 50257 + <|pad|>; BERT's WordPiece vocabulary
RUNS = sorted(p.stem for p in (CONFIG_DIR / "runs").glob("*.yaml") if p.stem.startswith(("owt_", "lm1b_")))
TINY = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.cond_dim=16", "model.max_len=16",
        "data.seq_len=16", "model.attention=sdpa", "model.dropout=0.0"]


def test_every_family_has_an_owt_and_an_lm1b_config():
    families = ("ar", "bd3lm", "mdlm", "sedd", "udlm")
    assert RUNS == [f"{corpus}_{family}" for corpus in ("lm1b", "owt") for family in families]


@pytest.mark.parametrize("run", RUNS)
def test_paper_config_loads_with_the_papers_settings_and_builds_on_meta(run):
    cfg = load_config(str(CONFIG_DIR / "runs" / f"{run}.yaml"))
    check_config(cfg)
    t, d = cfg.train, cfg.data
    assert (t.batch_size, t.lr, t.warmup_steps, t.lr_schedule, t.ema, t.weight_decay, t.precision) == (
        512, 3e-4, 2500, "constant", 0.9999, 0.0, "bf16")
    assert t.steps == {"owt_sedd": 1_300_000, "owt_bd3lm": 150_000}.get(run, 1_000_000)  # BD3LM: after 850K MDLM
    assert d.source.startswith("prepared:") and d.seq_len == cfg.model.max_len == (1024 if run.startswith("owt")
                                                                                  else 128)
    assert (cfg.model.d_model, cfg.model.n_layers, cfg.model.n_heads, cfg.model.dropout) == (768, 12, 12, 0.1)
    with torch.device("meta"):
        model = DiffusionLM.from_config(cfg, VOCAB[d.tokenizer])
    widths = {VOCAB[d.tokenizer], VOCAB[d.tokenizer] + 1}  # the vocabulary, plus the mask for absorbing models
    blocks = sum(p.numel() for p in model.parameters() if not widths & set(p.shape))
    assert 80e6 < blocks < 95e6  # the DiT's 12 blocks of width 768: ~85M, plus adaLN; then the vocab layers


@pytest.mark.parametrize("run", RUNS)
def test_paper_config_trains_a_step_with_tiny_overrides(run):
    cfg = load_config(str(CONFIG_DIR / "runs" / f"{run}.yaml"), TINY)
    torch.manual_seed(0)
    model = DiffusionLM.from_config(cfg, VOCAB[cfg.data.tokenizer])
    x0 = torch.randint(0, VOCAB[cfg.data.tokenizer], (2, 16), generator=torch.Generator().manual_seed(0))
    out = model.loss(x0, generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.loss > 0
    assert torch.allclose(out.loss.double(), out.nll_sum / out.num_tokens)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
