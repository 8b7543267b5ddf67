"""Duo's discrete consistency distillation (DCD; Sahoo et al., arXiv 2506.10892 §4; docs/distillation.md#dcd).

The trajectory. For clean x (B, L), times t > s and ONE Gaussian draw eps (B, L, N) shared by both times,
    z_t = argmax(mu_t e_x + eps),    z_s = argmax(mu_s e_x + eps)        (process/gaussian_link.py: mu of the schedule)
a deterministic, DDIM-like coupling given the seed: each z is marginally a uniform-state sample q(. | x) of the
model's schedule, and z_s is the point the same noise reaches at the lower noise level.
The loss. The student at (z_t, t) matches the frozen teacher at (z_s, s) at every position:
    D( x_S(. | z_t, t) , x_T(. | z_s, s) ),    D = kl_bwd (Duo's default) or another divergences.py entry,
with t stratified on [0, 1], t <- min(t + dt, 1), s = t - dt; round r uses dt = 2^r / teacher_steps (Duo's
T = teacher_steps), so the horizon a student looks ahead grows to about the step of teacher_steps / 2^(r+1) steps.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.denoiser import Denoiser, as_prediction
from dlm.process.gaussian_link import mu_of_alpha
from dlm.process.uniform import Uniform
from dlm.train.distill.divergences import divergence


def consistency_pair(process: Uniform, x0: Tensor, t: Tensor, s: Tensor,
                     generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """(z_t, z_s), both (B, L), from one Gaussian draw per position: argmax(mu e_x + eps) at the mu of alpha_t and
    alpha_s. x0 (B, L), t and s (B,) float64."""
    n = process.width
    mu_t, mu_s = (mu_of_alpha(process.schedule.alpha(time.double()), n) for time in (t, s))
    eps = torch.randn(*x0.shape, n, generator=generator, dtype=torch.float64, device=x0.device)
    signal = torch.nn.functional.one_hot(x0, n).double()

    def token(mu: Tensor) -> Tensor:
        return (mu.view(-1, 1, 1) * signal + eps).argmax(-1)

    return token(mu_t), token(mu_s)


def consistency_times(batch: int, dt: float, generator: torch.Generator | None,
                      device: torch.device) -> tuple[Tensor, Tensor]:
    """(t, s) (B,) float64: t stratified on [0, 1) (one offset per batch), then t <- min(t + dt, 1), s = t - dt."""
    offset = torch.rand(1, generator=generator, dtype=torch.float64, device=device)
    t = (offset + torch.arange(batch, dtype=torch.float64, device=device) / batch) % 1.0
    t = (t + dt).clamp_max(1.0)
    return t, t - dt


def dcd_loss(student: Denoiser, teacher: Denoiser, process: Uniform, x0: Tensor, dt: float, *,
             divergence_name: str = "kl_bwd", generator: torch.Generator | None = None) -> tuple[Tensor, int]:
    """One Monte Carlo estimate of the DCD loss on clean rows x0 (B, L) with consistency step dt.
    -> (mean divergence over every position (scalar), positions)."""
    t, s = consistency_times(x0.shape[0], dt, generator, x0.device)
    zt, zs = consistency_pair(process, x0, t, s, generator)
    with torch.no_grad():
        target = torch.softmax(as_prediction(teacher(zs, s.float())).log_probs.float(), -1)
    log_probs = torch.log_softmax(as_prediction(student(zt, t.float())).log_probs, -1)
    per_position = divergence(divergence_name, log_probs.flatten(0, 1), target.flatten(0, 1))
    return per_position.mean(), per_position.numel()
