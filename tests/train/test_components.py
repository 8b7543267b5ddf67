"""Optimizer groups and LR schedule, EMA, atomic checkpoint files and metrics truncation."""

from __future__ import annotations

import json

import pytest
import torch

from dlm.config import TrainConfig, load_config
from dlm.diffusion_lm import DiffusionLM
from dlm.registry import ConfigError
from dlm.train.checkpoint import LATEST, latest_checkpoint, load_trainer_state, save_checkpoint
from dlm.train.ema import EMA
from dlm.train.log import read_metrics, truncate_metrics
from dlm.train.optim import build_optimizer, build_scheduler, lr_multiplier, param_groups
from tests.train.conftest import fake_model_dir


def _model(*overrides: str) -> DiffusionLM:
    torch.manual_seed(0)
    return DiffusionLM.from_config(load_config(None, ["model=tiny", *overrides]), vocab_size=11)


def test_no_weight_decay_on_biases_norms_and_embeddings():
    model = _model("objective.time_conditioning=true")
    decay, no_decay = param_groups(model, weight_decay=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "backbone.blocks.0.attn.qkv.weight" in decayed and "backbone.head.weight" in decayed
    assert not any(n.endswith("bias") or "norm" in n or n == "backbone.embed.weight" for n in decayed)
    assert "backbone.embed.weight" in {names[id(p)] for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.1


def test_warmup_then_cosine_to_min_lr():
    cfg = TrainConfig(steps=110, warmup_steps=10, min_lr_ratio=0.1, lr_schedule="cosine")
    assert lr_multiplier(0, cfg) == pytest.approx(0.1) and lr_multiplier(9, cfg) == 1.0
    assert lr_multiplier(60, cfg) == pytest.approx(0.55)
    assert lr_multiplier(110, cfg) == pytest.approx(0.1) and lr_multiplier(500, cfg) == pytest.approx(0.1)
    steps = [lr_multiplier(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(steps, steps[1:]))
    constant = TrainConfig(steps=100, warmup_steps=4, lr_schedule="constant")
    assert [lr_multiplier(s, constant) for s in (0, 3, 50, 99)] == [0.25, 1.0, 1.0, 1.0]


def test_scheduler_drives_the_optimizer_lr():
    model = _model()
    cfg = TrainConfig(steps=20, warmup_steps=5, lr=1e-3)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    seen = []
    for _ in range(20):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([1e-3 * lr_multiplier(s, cfg) for s in range(20)])


def test_ema_follows_the_warmed_up_decay_and_swaps_back():
    model = _model()
    ema = EMA(model, decay=0.9)
    param = next(model.parameters())
    start = param.detach().clone()
    with torch.no_grad():
        param.add_(1.0)
    ema.update()  # d = min(0.9, 1/10) = 0.1: the shadow moves 90% of the way
    torch.testing.assert_close(ema.shadow[0], start + 0.9)
    assert ema.current_decay() == pytest.approx(2 / 11)
    with ema.swapped_in():
        torch.testing.assert_close(param.detach(), start + 0.9)
    torch.testing.assert_close(param.detach(), start + 1.0)
    restored = EMA(_model(), decay=0.9)
    restored.load_state_dict(ema.state_dict())
    assert restored.num_updates == 1 and torch.equal(restored.shadow[0], ema.shadow[0])
    with pytest.raises(ConfigError, match="must be 0"):
        EMA(model, decay=1.5)


def test_checkpoints_are_atomic_pointed_to_and_pruned(tmp_path):
    state = {"step": 0, "model": {}, "optimizer": {}, "scheduler": {}, "data": {}}
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, {**state, "step": step}, fake_model_dir, keep=2)
    assert (tmp_path / LATEST).read_text().strip() == "step_000004"
    assert sorted(p.name for p in tmp_path.iterdir()) == [LATEST, "step_000003", "step_000004"]
    assert load_trainer_state(latest_checkpoint(tmp_path))["step"] == 4
    torch.save({"step": 1}, tmp_path / "step_000004" / "trainer_state.pt")
    with pytest.raises(ConfigError, match="is not a dlm trainer state"):
        load_trainer_state(tmp_path / "step_000004")


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path):
    state = {"step": 1, "model": {}, "optimizer": {}, "scheduler": {}, "data": {}}
    save_checkpoint(tmp_path, 1, state, fake_model_dir)

    def crash(path):
        raise OSError("disk full")

    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 2, {**state, "step": 2}, crash)
    assert latest_checkpoint(tmp_path).name == "step_000001"
    assert not (tmp_path / "step_000002").exists()


def test_truncate_metrics_keeps_steps_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": s / 10}) + "\n" for s in range(1, 8)))
    truncate_metrics(path, 4)
    assert read_metrics(path) == [{"step": s, "loss": s / 10} for s in range(1, 5)]
