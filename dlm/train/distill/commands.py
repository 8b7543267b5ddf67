"""`dlm distill`: the typed function behind the CLI subcommand (dlm/cli.py derives the flags).

    dlm distill --method sdtt --teacher runs/shakespeare_mdlm/final --out-dir runs/distill/mdlm --teacher-steps 64
    dlm sample --checkpoint runs/distill/mdlm/final --steps 8
"""

from __future__ import annotations

import json
from typing import Any

from dlm.train.distill.run import DistillConfig, distill


def distill_command(teacher: str, out_dir: str, method: str = "sdtt", teacher_steps: int = 64, rounds: int = 3,
                    steps_per_round: int = 200, batch_size: int = 32, lr: float = 1e-4, grad_clip: float = 1.0,
                    divergence: str = "kl_bwd", target: str = "sampled", time_sampling: str = "grid", ema: float = 0.0,
                    seed: int = 0, save_every: int = 0, log_every: int = 10,
                    resume: bool = False) -> dict[str, Any]:
    """Distil a diffusion model into a few-step sampler: SDTT for masked models, Duo's consistency distillation for
    uniform-state models (docs/distillation.md).

    Args:
        teacher: the model to distil (a dlm checkpoint dir, e.g. runs/shakespeare_mdlm/final); the student starts
            from its weights and trains on its training data.
        out_dir: where students/steps_<k>/ (one per round), final/, checkpoints and metrics.jsonl go.
        method: sdtt (masked and block-diffusion models: matches the teacher's two steps per student step, per
            block for a block model) or dcd (uniform-state models: Duo's discrete consistency distillation).
        teacher_steps: sampling steps of the starting teacher (per block for a block model); each round halves
            them.
        rounds: distillation rounds (the final student samples with teacher_steps / 2^rounds steps).
        steps_per_round: optimizer steps per round.
        batch_size: sequences per optimizer step.
        lr: AdamW learning rate (constant).
        grad_clip: gradient-norm clipping (0 = off).
        divergence: kl_bwd (the references' default), kl_fwd, mse (log-probabilities) or tvd.
        target: sdtt's target: sampled (the reference's: one sampled teacher trajectory; sharper students under
            kl_bwd) or law (the teacher's two-step law per position; keeps the teacher's entropy).
        time_sampling: sdtt's student steps: grid (the student's own k-step grid) or uniform (the reference's).
        ema: EMA decay of the exported students (0 = off; the reference uses 0.9999 over 10k-step rounds).
        seed: seed of every random draw.
        save_every: checkpoint every this many optimizer steps (0 = at round ends only).
        log_every: log metrics every this many steps.
        resume: continue out_dir from its newest checkpoint (same settings).
    """
    cfg = DistillConfig(method=method, teacher_steps=teacher_steps, rounds=rounds, steps_per_round=steps_per_round,
                        batch_size=batch_size, lr=lr, grad_clip=grad_clip, divergence=divergence, target=target,
                        time_sampling=time_sampling, ema=ema, seed=seed,
                        save_every=save_every, log_every=log_every)
    summary = distill(teacher, out_dir, cfg, resume=resume)
    print(json.dumps(summary, indent=2))
    return summary
