"""Training on a prepared (memory-mapped) source: an interrupted run resumed with --resume continues the same loss
curve bit for bit on the CPU, and pad mode trains on the same source."""

from __future__ import annotations

import pytest
import torch

from dlm.config import load_config
from dlm.data.prepare import prepare
from dlm.train import train
from dlm.train.log import METRICS_FILE, MetricsLogger, read_metrics
from tests.train.conftest import final_weights, tiny_run
from tests.train.test_resume import Interrupted, _interrupt_after_logging

RUN = ["data.tokenizer=byte", "train.steps=6", "train.save_every=3", "train.eval_every=3", "train.grad_accum=2"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, small_corpus):
    folder = tmp_path_factory.mktemp("prepared") / "p"
    prepare(str(small_corpus), "byte", folder)
    return f"prepared:{folder}"


def test_resume_from_a_prepared_source_continues_the_same_loss_curve(tmp_path, prepared, monkeypatch):
    whole = tmp_path / "whole"
    train(load_config(None, tiny_run(whole, prepared, *RUN)))
    cfg = load_config(None, tiny_run(tmp_path / "cut", prepared, *RUN))
    monkeypatch.setattr(MetricsLogger, "log", _interrupt_after_logging(4))
    with pytest.raises(Interrupted):
        train(cfg)
    monkeypatch.undo()
    train(cfg, resume=True)
    expected, resumed = read_metrics(whole / METRICS_FILE), read_metrics(tmp_path / "cut" / METRICS_FILE)
    assert [r["step"] for r in resumed] == list(range(1, 7))
    for want, got in zip(expected, resumed):
        for key in ("loss", "grad_norm", "val_nll"):
            assert got.get(key) == want.get(key), (want["step"], key)
    for name, weight in final_weights(whole).items():
        assert torch.equal(final_weights(tmp_path / "cut")[name], weight), name


def test_pad_mode_trains_from_a_prepared_source(tmp_path, prepared):
    summary = train(load_config(None, tiny_run(tmp_path, prepared, *RUN, "data.mode=pad", "train.save_every=0")))
    assert summary["steps"] == 6 and summary["val_nll"] < summary["uniform_nll"]
