"""A diverging run stops (or skips the step) with a one-line error naming it, and no checkpoint or final/ ever holds
a non-finite weight; resuming from the newest checkpoint with a lower lr finishes the run."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from dlm.config import load_config
from dlm.registry import ConfigError
from dlm.train import loop, train
from dlm.train.checkpoint import TRAINER_STATE, checkpoint_root, latest_checkpoint
from dlm.train.log import METRICS_FILE, read_metrics
from dlm.train.parallel import Parallel
from tests.train.conftest import final_weights, tiny_run

DIVERGE = ["train.lr=1e9", "train.warmup_steps=0", "train.save_every=1", "train.eval_every=0"]


def _all_finite(weights: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(w).all()) for w in weights.values())


def _checkpoints_finite(out_dir) -> list[str]:
    names = []
    for path in sorted(checkpoint_root(out_dir).glob("step_*")):
        assert _all_finite(load_file(str(path / "model" / "model.safetensors"))), path
        assert _all_finite(torch.load(path / TRAINER_STATE, weights_only=True)["model"]), path
        names.append(path.name)
    return names


def test_divergence_stops_naming_the_step_and_saves_nothing_non_finite(tmp_path, small_corpus):
    cfg = load_config(None, tiny_run(tmp_path, small_corpus, "train.steps=4", *DIVERGE))
    with pytest.raises(loop.TrainingDiverged) as info:
        train(cfg)
    message = str(info.value)
    assert "\n" not in message and "training diverged at step 2: loss nan" in message
    assert "the newest checkpoint is step_000001" in message and "train.on_nonfinite=skip" in message
    assert _checkpoints_finite(tmp_path) == ["step_000001"] and not (tmp_path / "final").exists()
    assert [r["step"] for r in read_metrics(tmp_path / METRICS_FILE)] == [1]


def test_resume_after_a_divergence_continues_from_the_last_finite_checkpoint(tmp_path, small_corpus, monkeypatch):
    real = Parallel.forward_backward

    def nan_gradients_at_step_3(self, ids, mask, generator, sync, step=None):
        out = real(self, ids, mask, generator, sync=sync, step=step)
        if self.poisoned_step == 2:
            next(p for p in self.model.parameters() if p.grad is not None).grad.view(-1)[0] = float("nan")
        return out

    monkeypatch.setattr(Parallel, "forward_backward", nan_gradients_at_step_3)
    monkeypatch.setattr(loop, "train_step", _tracking_step(loop.train_step))
    overrides = tiny_run(tmp_path, small_corpus, "train.steps=4", "train.save_every=1", "train.eval_every=0")
    with pytest.raises(loop.TrainingDiverged, match="training diverged at step 3: loss [0-9.]+, grad norm nan"):
        train(load_config(None, overrides))
    assert _checkpoints_finite(tmp_path) == ["step_000001", "step_000002"]
    monkeypatch.undo()
    summary = train(load_config(None, overrides), resume=True)
    assert summary["steps"] == 4 and _all_finite(final_weights(tmp_path))
    assert [r["step"] for r in read_metrics(tmp_path / METRICS_FILE)] == [1, 2, 3, 4]
    assert _checkpoints_finite(tmp_path) == ["step_000002", "step_000003", "step_000004"]


def _tracking_step(step_fn):
    def step(tr, batch):
        tr.parallel.poisoned_step = tr.step
        return step_fn(tr, batch)

    return step


def test_skip_drops_non_finite_updates_and_counts_them(tmp_path, small_corpus):
    cfg = load_config(None, tiny_run(tmp_path, small_corpus, "train.steps=4", *DIVERGE, "train.on_nonfinite=skip"))
    summary = train(cfg)
    assert summary["skipped_steps"] == 3  # step 1 is finite; its 1e9-lr update breaks every later loss
    assert [r["skipped_steps"] for r in read_metrics(tmp_path / METRICS_FILE)] == [0, 1, 2, 3]
    first = load_file(str(checkpoint_root(tmp_path) / "step_000002" / "model" / "model.safetensors"))
    for name, weight in final_weights(tmp_path).items():  # a skipped update leaves the weights untouched
        assert torch.equal(weight, first[name]), name
    assert torch.load(latest_checkpoint(checkpoint_root(tmp_path)) / TRAINER_STATE, weights_only=True)["skipped"] == 3


def test_non_finite_weights_are_never_checkpointed(tmp_path, small_corpus, monkeypatch):
    real_step = loop.train_step

    def poisoned(tr, batch):  # finite loss, but the update leaves an inf weight (e.g. an fp overflow)
        out = real_step(tr, batch)
        if tr.step == 1:
            with torch.no_grad():
                next(tr.model.parameters()).view(-1)[0] = float("inf")
        return out

    monkeypatch.setattr(loop, "train_step", poisoned)
    cfg = load_config(None, tiny_run(tmp_path, small_corpus, "train.steps=3", "train.save_every=1"))
    with pytest.raises(loop.TrainingDiverged, match="training diverged by step 2: weight .* is not finite"):
        train(cfg)
    assert _checkpoints_finite(tmp_path) == ["step_000001"]
    assert latest_checkpoint(checkpoint_root(tmp_path)).name == "step_000001"


@pytest.mark.parametrize("value", ["nan", ".inf", "-inf"])
def test_non_finite_lr_is_a_config_error(tmp_path, value):
    with pytest.raises(ConfigError, match=r"config key 'train.lr' expects a finite number"):
        load_config(None, [f"train.lr={value}"])


def test_unknown_nonfinite_rule(tmp_path, small_corpus):
    cfg = load_config(None, tiny_run(tmp_path, small_corpus, "train.on_nonfinite=ignore"))
    with pytest.raises(ConfigError, match="train.on_nonfinite='ignore' must be one of: stop, skip"):
        train(cfg)
