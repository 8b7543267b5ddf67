"""First-hitting sampling (FHS) of masked diffusion: Zheng, Yuan, Yu, Zhu, Zhang, Bao, arXiv 2409.02908; the BD3LM
reference samples each block this way (arXiv 2503.09573; docs/samplers.md, "First hitting").

Under an absorbing process each of the n masked positions of x_t became masked at its own time, i.i.d. given x_0,
and going backwards a masked position is still masked at s < t with probability (1 - alpha_s) / (1 - alpha_t). So
the time tau at which the next of them unmasks (the first one "hit" going backwards) has
    P(tau <= s) = ((1 - alpha_s) / (1 - alpha_t))^n    ->    1 - alpha_tau = (1 - alpha_t) u^{1/n},  u ~ U(0, 1),
(tau = t u^{1/n} for alpha_t = 1 - t, the reference's `t *= u ** (1 / n)`), and which one it is is uniform among
them. A step therefore draws tau, picks one masked position uniformly, and draws its token from x_theta(. | x_t)
at time tau; nothing else changes. With an exact denoiser this is exact sampling of p(x_0) (one position at a
time from its exact conditional, in a uniformly random order: the ancestral sampler's law as its steps go to
infinity, without the steps that unmask nothing). One denoiser call per token: NFE = the number of masks.

A registered sampler rather than an option of the block sampler: it is a rule for any masked model (MDLM, semi-AR
blocks) and runs inside a block like any other (`block:inner=first_hitting`). The time is tracked per row (rows
progress independently) and reaches the denoiser as a (B,) tensor; it only matters to a time-conditioned model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.process.base import Capability
from dlm.registry import SAMPLERS
from dlm.sample.base import Sampler
from dlm.sample.chunks import gather_positions
from dlm.sample.context import SamplingContext
from dlm.sample.grids import TimeGrid
from dlm.sample.semi_ar import DecodeBlock, block_plan
from dlm.types import StepOutput
from dlm.utils.categorical import inverse_cdf


def hitting_time(schedule, t: Tensor, masked: Tensor, u: Tensor, iterations: int = 64) -> Tensor:
    """The first-hitting time tau (float64 (n,)) from t (n,), the masks left (n,) and u ~ U(0, 1) (n,): the root in
    [0, t] of 1 - alpha_tau = (1 - alpha_t) u^{1/masked}, by bisection (alpha is decreasing in t; the error is
    t 2^-iterations)."""
    target = (1 - schedule.alpha(t)) * u.pow(1.0 / masked.double())
    low, high = torch.zeros_like(t), t.clone()
    for _ in range(iterations):
        middle = (low + high) / 2
        below = 1 - schedule.alpha(middle) < target
        low, high = torch.where(below, middle, low), torch.where(below, high, middle)
    return high


@SAMPLERS.register("first_hitting")
@dataclass
class FirstHitting(Sampler):
    """One token per step at the exact next unmasking time (module docstring); `steps` is not used: each block
    runs until it has no mask (as many steps as its widest row has masks). temperature / top-k / top-p reshape the
    law the token is drawn from (temperature 0: argmax)."""

    needs = frozenset({Capability.ABSORBING})

    def blocks(self, editable: Tensor, steps: int) -> list[DecodeBlock]:
        return [DecodeBlock(b.editable, max(int(b.editable.sum(-1).max()), 1))
                for b in block_plan(editable, self.block_size, 0)]

    def step(self, ctx: SamplingContext, xt: Tensor, grid: TimeGrid, i: int) -> StepOutput:
        masked = xt == ctx.process.mask_id
        if ctx.editable is not None:
            masked &= ctx.editable
        left = masked.sum(-1)  # (B,)
        if i == 0:  # a new block: every row starts from t = 1
            ctx.state["first_hitting"] = torch.ones(xt.shape[0], dtype=torch.float64, device=xt.device)
        active = left > 0
        if not bool(active.any()):
            return StepOutput(xs=xt)  # nothing to do: no denoiser call
        rows = active.nonzero()[:, 0]
        u = ctx.uniform((len(rows), 3), xt.device, rows=rows)  # per row: the time, the position, the token
        t = ctx.state["first_hitting"]
        t[rows] = hitting_time(ctx.process.schedule, t[rows], left[rows], u[:, 0])
        prediction = self.predict(ctx, xt, t)
        rank = (u[:, 1] * left[rows]).long().clamp_max(left[rows] - 1)  # uniform among the row's masks
        column = (masked[rows].cumsum(-1) == (rank + 1)[:, None]).long().argmax(-1)  # its rank-th mask
        probs = ctx.process.x0_at_masks(gather_positions(prediction, rows * xt.shape[1] + column))[:, 0]  # (n, N)
        if self.temperature == 0:
            token = probs.argmax(-1)
        else:
            law = self.reshape(probs.double()) if self.reshaped() else probs
            token = inverse_cdf(law, u[:, 2])
        xs = xt.clone()
        xs[rows, column] = token
        return StepOutput(xs=xs, prediction=prediction)
