"""`dlm rl`: the typed function behind the CLI subcommand (dlm/cli.py derives the flags).

    dlm rl --task sudoku4x4 --checkpoint runs/tasks/sudoku4x4_mdlm/final --out-dir runs/rl/sudoku4x4 --steps 64
"""

from __future__ import annotations

import json
from typing import Any

from dlm.train.rl.run import GRPOConfig, rl_train


def rl_command(task: str, checkpoint: str, out_dir: str, steps: int = 64, prompts: int = 4, group_size: int = 6,
               mu: int = 2, beta: float = 0.04, clip_eps: float = 0.5, prompt_mask_prob: float = 0.15,
               lr: float = 1e-5, temperature: float = 0.9, sampler: str = "", sampler_steps: int = 0,
               reward: str = "checker", format_weight: float = 0.0, seed: int = 0, save_every: int = 0,
               resume: bool = False) -> dict[str, Any]:
    """Post-train a task model with diffu-GRPO (plain GRPO for an autoregressive checkpoint), rewarded by the
    task's rule checker.

    Args:
        task: a registered task (sudoku4x4, sudoku9x9, countdown3, countdown4, mult4x4, ...).
        checkpoint: the SFT model, e.g. runs/tasks/sudoku4x4_mdlm/final; it is also the frozen KL reference.
        out_dir: where checkpoints, metrics.jsonl and final/ go.
        steps: optimizer steps (a multiple of mu).
        prompts: prompts per batch of generations.
        group_size: completions per prompt (G).
        mu: inner updates per batch of generations.
        beta: weight of the KL penalty to the reference (k3 estimator).
        clip_eps: clipping range of the policy ratio.
        prompt_mask_prob: probability of masking each prompt token in the one-step estimator (masked models).
        lr: AdamW learning rate.
        temperature: sampling temperature of the rollouts.
        sampler: the rollout sampler ('' = the model's default), options after a colon.
        sampler_steps: reverse steps of a rollout (0 = one per answer token).
        reward: checker (1 when the task's checker accepts the answer) or partial (the task's partial credit in
            [0, 1]; Sudoku: d1's fraction of the blank cells filled correctly).
        format_weight: weight of the format reward (answer made of the task's symbols).
        seed: seed of every random draw.
        save_every: checkpoint every this many steps (a multiple of mu; 0 = only at the end).
        resume: continue out_dir from its newest checkpoint (only --steps may change).
    """
    cfg = GRPOConfig(steps=steps, prompts=prompts, group_size=group_size, mu=mu, beta=beta, clip_eps=clip_eps,
                     prompt_mask_prob=prompt_mask_prob, lr=lr, temperature=temperature, sampler=sampler,
                     sampler_steps=sampler_steps, reward=reward, format_weight=format_weight, seed=seed,
                     save_every=save_every)
    summary = rl_train(task, checkpoint, out_dir, cfg, resume=resume)
    print(json.dumps(summary, indent=2))
    return summary
