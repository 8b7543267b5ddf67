"""A uniform_elbo run killed in the middle of objective.curriculum and resumed continues bit-identically: the
temperature is a function of the global step, which the checkpoint restores (tests/train/test_resume.py's check)."""

from __future__ import annotations

import pytest

from dlm.config import load_config
from dlm.train import train
from dlm.train.log import METRICS_FILE, MetricsLogger, read_metrics
from tests.train.conftest import tiny_run
from tests.train.test_resume import KILL_AT, RUN, Interrupted, _interrupt_after_logging, _same_curve

UNIFORM = ["objective.name=uniform_elbo"]
# relaxed over steps 0..6 (the kill is after step 5, the resume restarts from the checkpoint at step 3), plain at 7
CURRICULUM = ["objective.curriculum.start=1", "objective.curriculum.end=7", "objective.curriculum.tau_log10_start=-1",
              "objective.curriculum.tau_log10_end=-2"]


def test_resume_mid_curriculum_continues_the_same_loss_curve(tmp_path, small_corpus, monkeypatch):
    whole, plain, out = tmp_path / "whole", tmp_path / "plain", tmp_path / "resumed"
    train(load_config(None, tiny_run(whole, small_corpus, *RUN, *UNIFORM, *CURRICULUM)))
    train(load_config(None, tiny_run(plain, small_corpus, *RUN, *UNIFORM)))
    relaxed_losses = [r["loss"] for r in read_metrics(whole / METRICS_FILE)]
    assert relaxed_losses[0] != read_metrics(plain / METRICS_FILE)[0]["loss"]  # the curriculum was on
    cfg = load_config(None, tiny_run(out, small_corpus, *RUN, *UNIFORM, *CURRICULUM))
    monkeypatch.setattr(MetricsLogger, "log", _interrupt_after_logging(KILL_AT))
    with pytest.raises(Interrupted):
        train(cfg)
    monkeypatch.undo()
    train(cfg, resume=True)
    _same_curve(whole, out)
