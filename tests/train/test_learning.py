"""A short run on the bundled Tiny Shakespeare lowers the validation bound well below a uniform guess, log V;
metrics go to metrics.jsonl (and TensorBoard when asked for and installed)."""

from __future__ import annotations

import importlib.util
import math

import pytest

from dlm.config import load_config
from dlm.diffusion_lm import DiffusionLM
from dlm.registry import ConfigError
from dlm.train import train
from dlm.train.log import METRICS_FILE, read_metrics
from tests.train.conftest import tiny_run


def test_short_run_beats_the_uniform_bound(tmp_path):
    cfg = load_config(None, [
        "model=tiny", "data.source=tinyshakespeare", "data.tokenizer=char", "data.seq_len=64",
        "train.steps=40", "train.batch_size=16", "train.lr=2e-3", "train.warmup_steps=4", "train.eval_every=20",
        "train.eval_batches=4", "train.log_every=10", "train.save_every=0", "train.progress=false",
        f"train.out_dir={tmp_path}",
    ])
    summary = train(cfg)
    assert summary["uniform_nll"] == math.log(69)  # 65 characters + bos, eos, pad, unk
    assert summary["val_nll"] < summary["uniform_nll"] - 0.7
    assert math.isclose(summary["val_ppl"], math.exp(summary["val_nll"]))
    records = read_metrics(tmp_path / METRICS_FILE)
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s"} <= records[0].keys()
    assert records[-1]["val_nll"] == summary["val_nll"] < records[1]["val_nll"]
    final = DiffusionLM.from_pretrained(summary["final_dir"])
    assert final.tokenizer.decode(final.tokenizer.encode("ROMEO:")) == "ROMEO:"


def test_tensorboard_is_optional(tmp_path, small_corpus):
    cfg = load_config(None, tiny_run(tmp_path, small_corpus, "train.steps=2", "train.tensorboard=true"))
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(ConfigError, match="pip install tensorboard"):
            train(cfg)
    else:
        train(cfg)
        assert any((tmp_path / "tensorboard").iterdir())


def test_pad_mode_masks_padding(tmp_path, small_corpus):
    """One document per row (pad mode): losses and the bound cover real tokens only and stay finite."""
    cfg = load_config(None, tiny_run(tmp_path, small_corpus, "data.mode=pad", "train.steps=3", "train.grad_accum=2"))
    summary = train(cfg)
    assert math.isfinite(summary["val_nll"]) and math.isfinite(summary["train_loss"])
    assert summary["val_nll"] < summary["uniform_nll"] + 1.0
