"""The resume check every RL test shares: a run of `steps` and a run stopped half-way then resumed log the same
metrics (wall time aside)."""

from __future__ import annotations

from pathlib import Path

import torch

import dlm
from dlm.tasks.base import Task
from dlm.train.log import read_metrics
from dlm.train.rl.run import GRPOConfig, rl_train

SETTINGS = dict(prompts=3, group_size=6, mu=2, lr=3e-2, grad_clip=1.0, save_every=2)


def resumed_rl_metrics(task: Task, overrides: list[str], tmp_path: Path, steps: int) -> list[dict]:
    """Save a fresh tiny model built from `overrides` as tmp_path/sft, run RL for `steps` (tmp_path/full) and for
    steps / 2 then resumed to `steps` (tmp_path/split); assert both logged the same metrics; return them."""
    cfg = dlm.load_config(None, ["model.d_model=16", "model.n_layers=1", "model.n_heads=2", "model.max_len=8",
                                 *overrides])
    torch.manual_seed(0)
    dlm.DiffusionLM.from_config(cfg, len(task.tokenizer), tokenizer=task.tokenizer).save_pretrained(
        str(tmp_path / "sft"))
    rl_train(task, tmp_path / "sft", tmp_path / "full", GRPOConfig(steps=steps, **SETTINGS))
    rl_train(task, tmp_path / "sft", tmp_path / "split", GRPOConfig(steps=steps // 2, **SETTINGS))
    rl_train(task, tmp_path / "sft", tmp_path / "split", GRPOConfig(steps=steps, **SETTINGS), resume=True)
    full, split = read_metrics(tmp_path / "full/metrics.jsonl"), read_metrics(tmp_path / "split/metrics.jsonl")
    drop = ("elapsed_s",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in split] == \
           [{k: v for k, v in r.items() if k not in drop} for r in full]
    return full
