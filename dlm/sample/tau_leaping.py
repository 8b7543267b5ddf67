"""Rate-based reverse CTMC steps: SEDD Euler and tau-leaping (Campbell et al., arXiv 2205.14987), per position.

Both read the reverse rates R_t(x_t -> y) = sigma'(t) pi_{x_t} s_y (denoiser.py) frozen at the start of the step.
* Euler (SEDD EulerPredictor): p(y) = h R(y) for y != x_t, stay 1 - h sum_y R(y) (clipped at 0).
* tau-leaping: the stage operator S(x, R, h) of docs/samplers.md, the "first-jump" realization of holding the rates
  fixed for a time h: a position jumps with probability 1 - exp(-h Lambda), Lambda = sum_y R(y), to y with
  probability R(y) / Lambda. Each position makes at most one jump per step, the rule categorical (and absorbing)
  data needs (Campbell's Poisson counts add displacements, which only ordinal data allows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.process.absorbing import Absorbing
from dlm.process.uniform import Uniform
from dlm.registry import SAMPLERS
from dlm.sample.base import Sampler
from dlm.sample.context import SamplingContext
from dlm.sample.mixture import Mixture


def jump_probs(x: Tensor, rates: Tensor, tau: float) -> Tensor:
    """S(x, R, tau): per-position law (B, L, N) after a first-jump step of length tau; rates (B, L, N) >= 0 with
    rates[x] = 0. P(stay) = exp(-tau Lambda), P(y) = (1 - exp(-tau Lambda)) R(y) / Lambda."""
    total = rates.sum(-1, keepdim=True)
    jump = -torch.expm1(-tau * total)
    probs = torch.where(total > 0, rates * (jump / total.clamp_min(1e-300)), torch.zeros_like(rates))
    return probs.scatter(-1, x.unsqueeze(-1), 1 - jump)


@SAMPLERS.register("euler")
@dataclass
class Euler(Sampler):
    """First-order Euler step of the reverse CTMC, 1 NFE per step."""

    def stage_probs(self, ctx: SamplingContext, hist: list[Tensor], memo: dict, t: float, s: float) -> Tensor:
        xt = hist[0]
        moves = (t - s) * self.rates(ctx, xt, t)
        return moves.scatter(-1, xt.unsqueeze(-1), 1 - moves.sum(-1, keepdim=True))

    def stay(self, process: Absorbing, hist: list[Tensor], t: float, s: float) -> float:
        leave = (t - s) * process.mask_exit_rate(t)  # h Lambda; the stay entry 1 - h Lambda is clipped at 0
        return max(0.0, 1 - leave) / (max(0.0, 1 - leave) + leave)

    def uniform_mixture(self, process: Uniform, p_x: Tensor, t: float, s: float) -> Mixture:
        theta, spread = ((t - s) * rate for rate in process.rate_parts(p_x, t))  # h R summed by part, y != x_t
        return Mixture((1 - theta - spread).clamp_min(0), theta, spread, excludes=True)


@SAMPLERS.register("tau_leaping")
@dataclass
class TauLeaping(Sampler):
    """tau-leaping with the first-jump realization: x_s = S(x_t, R_t, t - s), 1 NFE per step, order 1."""

    def stage_probs(self, ctx: SamplingContext, hist: list[Tensor], memo: dict, t: float, s: float) -> Tensor:
        xt = hist[0]
        return jump_probs(xt, self.rates(ctx, xt, t), t - s)

    def stay(self, process: Absorbing, hist: list[Tensor], t: float, s: float) -> float:
        return math.exp(-(t - s) * process.mask_exit_rate(t))

    def uniform_mixture(self, process: Uniform, p_x: Tensor, t: float, s: float) -> Mixture:
        theta, spread = process.rate_parts(p_x, t)
        total = theta + spread
        jump = -torch.expm1(-(t - s) * total)  # first-jump: leave w.p. 1 - exp(-h Lam), then y w.p. R(y) / Lam
        scale = torch.where(total > 0, jump / total.clamp_min(1e-300), 0.0)
        return Mixture(1 - jump, theta * scale, spread * scale, excludes=True)
