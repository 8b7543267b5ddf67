"""A run interrupted after a checkpoint and resumed with --resume continues bit-identically on the CPU; --resume on
a directory with no checkpoint starts a fresh run (the first launch of a preemptible job), and a newest checkpoint
whose trainer state is corrupt or missing falls back to the one before it, on the same loss curve."""

from __future__ import annotations

import pytest
import torch

from dlm.config import load_config
from dlm.diffusion_lm import DiffusionLM
from dlm.train import train, train_command
from dlm.train.checkpoint import TRAINER_STATE, checkpoint_root, latest_checkpoint
from dlm.train.log import METRICS_FILE, MetricsLogger, read_metrics
from tests.train.conftest import final_weights, tiny_run

RUN = ["train.steps=8", "train.save_every=3", "train.eval_every=4", "train.ema=0.9", "train.grad_accum=2"]
KILL_AT = 5  # after the checkpoint at step 3, with steps 4 and 5 already logged


class Interrupted(Exception):
    pass


def _same_curve(whole, out) -> None:
    expected, resumed = read_metrics(whole / METRICS_FILE), read_metrics(out / METRICS_FILE)
    assert [r["step"] for r in resumed] == list(range(1, 9))
    for want, got in zip(expected, resumed):
        for key in ("loss", "lr", "grad_norm", "val_nll"):
            assert got.get(key) == want.get(key), (want["step"], key)
    for name, weight in final_weights(whole).items():
        assert torch.equal(final_weights(out)[name], weight), name


def _interrupt_after_logging(step: int):
    original = MetricsLogger.log

    def log(self, at: int, **metrics):
        original(self, at, **metrics)
        if at == step:
            raise Interrupted

    return log


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, small_corpus):
    out = tmp_path_factory.mktemp("whole")
    summary = train(load_config(None, tiny_run(out, small_corpus, *RUN)))
    return out, summary


def test_resume_continues_the_same_loss_curve(tmp_path, small_corpus, uninterrupted, monkeypatch):
    whole, whole_summary = uninterrupted
    cfg = load_config(None, tiny_run(tmp_path, small_corpus, *RUN))
    monkeypatch.setattr(MetricsLogger, "log", _interrupt_after_logging(KILL_AT))
    with pytest.raises(Interrupted):
        train(cfg)
    monkeypatch.undo()
    assert latest_checkpoint(checkpoint_root(tmp_path)).name == "step_000003"
    assert [r["step"] for r in read_metrics(tmp_path / METRICS_FILE)] == list(range(1, KILL_AT + 1))
    summary = train(cfg, resume=True)
    _same_curve(whole, tmp_path)
    assert summary["val_nll"] == whole_summary["val_nll"]


def test_every_checkpoint_is_a_pretrained_model_holding_the_ema(uninterrupted):
    out, _ = uninterrupted
    path = latest_checkpoint(checkpoint_root(out))
    model = DiffusionLM.from_pretrained(str(path / "model"))
    assert model.tokenizer is not None and len(model.tokenizer) == model.vocab_size
    ema = torch.load(path / TRAINER_STATE, weights_only=True)["ema"]["shadow"]
    for name, weight in model.state_dict().items():
        assert torch.equal(weight, ema[name]), name
    assert sorted(p.name for p in checkpoint_root(out).iterdir() if p.name.startswith("step_")) == [
        "step_000003", "step_000006", "step_000008"]


def test_one_resume_command_for_the_first_launch_and_every_requeue(tmp_path, small_corpus, uninterrupted,
                                                                      monkeypatch, capsys):
    whole, _ = uninterrupted
    out = tmp_path / "missing" / "run"  # the job's first launch: not even the parent exists
    overrides = tiny_run(out, small_corpus, *RUN)
    monkeypatch.setattr(MetricsLogger, "log", _interrupt_after_logging(KILL_AT))
    with pytest.raises(Interrupted):  # preempted after the checkpoint at step 3
        train_command(None, overrides, resume=True)
    monkeypatch.undo()
    assert capsys.readouterr().err.strip().splitlines() == [
        f"note: --resume: {out} holds no checkpoint yet; starting a fresh run"]
    train_command(None, overrides, resume=True)  # the requeue: the very same command
    assert "starting a fresh run" not in capsys.readouterr().err
    _same_curve(whole, out)


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_broken_newest_trainer_state_resumes_from_the_checkpoint_before_it(tmp_path, small_corpus, uninterrupted,
                                                                            monkeypatch, damage):
    whole, _ = uninterrupted
    cfg = load_config(None, tiny_run(tmp_path, small_corpus, *RUN))
    monkeypatch.setattr(MetricsLogger, "log", _interrupt_after_logging(7))
    with pytest.raises(Interrupted):  # after the checkpoint at step 6
        train(cfg)
    monkeypatch.undo()
    state = checkpoint_root(tmp_path) / "step_000006" / TRAINER_STATE
    assert latest_checkpoint(checkpoint_root(tmp_path)) == state.parent
    if damage == "corrupt":
        state.write_bytes(state.read_bytes()[: len(state.read_bytes()) // 2])
    else:
        state.unlink()
    with pytest.warns(UserWarning, match=r"step_000006.*trainer_state.pt.*resuming from the newest earlier "
                                         r"checkpoint, step_000003"):
        train(cfg, resume=True)
    _same_curve(whole, tmp_path)  # steps 4..8 retrained from step 3: the uninterrupted curve
