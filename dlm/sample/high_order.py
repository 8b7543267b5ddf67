"""Two-stage (2 NFE per step) reverse CTMC solvers of Ren et al., arXiv 2502.00234 (docs/samplers.md).

A step goes t -> s = t - h through rho = t - theta h. mu_n = R_t(. ; y_n) and mu_rho = R_rho(. ; y*) are the reverse
rates at the start state and at the stage-1 state; S(y, lambda, tau) is the first-jump stage operator
(tau_leaping.jump_probs) and [.]_+ clips at 0.
* theta-trapezoidal, theta in (0, 1):
      y* = S(y_n, mu_n, theta h),   y_{n+1} = S(y*, [a1 mu_rho - a2 mu_n]_+, (1 - theta) h),
      a1 = 1 / (2 theta (1 - theta)),  a2 = ((1 - theta)^2 + theta^2) / (2 theta (1 - theta))   (a1 - a2 = 1).
  Second order in the step (measured: TV order 2.00 on the masked toy, docs/samplers.md). A position that already
  jumped in stage 1 uses a1 mu_rho alone (the "drop" variant): mu_n holds rates out of a state it
  has left. For masked data the two variants agree (a clean token has no rates), for uniform data only "drop" is
  order 2.
* theta-RK-2, theta in (0, 1]:
      y* = S(y_n, mu_n, theta h),   y_{n+1} = S(y_n, [(1 - 1/(2 theta)) mu_n + 1/(2 theta) mu_rho]_+, h)
  (restarts from y_n; theta = 1/2 midpoint, 1 Heun). Only first order on masked data: a position unmasked in stage 1
  gets the O(h)-biased rate (1 - 1/(2 theta)) mu_n. Kept for comparison; prefer theta_trapezoidal.
Masked data (fused.py): from a mask the rates are Lambda_t x_theta, stage 1 stays w.p. exp(-theta h Lambda_t), and
stage 2's clipped total is bounded above by a1 Lambda_rho (trapezoidal; [c]_+ Lambda_n + Lambda_rho / (2 theta) for
RK-2), so both x_theta rows are read only where the uniform exceeds the implied stay bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from dlm.process.absorbing import Absorbing
from dlm.registry import SAMPLERS, ConfigError
from dlm.sample.base import Sampler
from dlm.sample.context import SamplingContext
from dlm.sample.tau_leaping import jump_probs


@dataclass
class _ThetaTwoStage(Sampler):
    """Shared stage 1 of both solvers: y* = S(y_n, mu_n, theta h); subclasses define stage 2."""

    theta: float = 0.5

    stages = 2
    theta_max_inclusive: ClassVar[bool] = False

    def __post_init__(self):
        super().__post_init__()
        upper_ok = self.theta <= 1 if self.theta_max_inclusive else self.theta < 1
        if not (0 < self.theta and upper_ok):
            bound = "<=" if self.theta_max_inclusive else "<"
            raise ConfigError(f"{type(self).__name__} needs 0 < theta {bound} 1, got {self.theta}")

    def stage_probs(self, ctx: SamplingContext, hist: list[Tensor], memo: dict, t: float, s: float) -> Tensor:
        h = t - s
        if len(hist) == 1:
            memo["mu_n"] = self.rates(ctx, hist[0], t)
            return jump_probs(hist[0], memo["mu_n"], self.theta * h)
        y_n, y_star = hist
        mu_n = memo["mu_n"] if "mu_n" in memo else self.rates(ctx, y_n, t)  # the fused path keeps no memo
        return self.second_stage(ctx, y_n, y_star, mu_n, t, h)

    second_stage: ClassVar[Callable[..., Tensor]]
    """(ctx, y_n, y_star, mu_n, t, h) -> jump probabilities of the second stage; each solver defines it."""

    def stay(self, process: Absorbing, hist: list[Tensor], t: float, s: float) -> float | None:
        """Stage 1 is tau-leaping over theta h; stage 2 mixes two predictions (only a bound, stay_bound)."""
        return math.exp(-self.theta * (t - s) * process.mask_exit_rate(t)) if len(hist) == 1 else None

    def mask_law(self, ctx, hist, t, s):
        """Stage 2 at masked origins on the x_theta path: rates out of a mask are Lambda_t x_theta, so the clipped
        mixture needs the two x_theta rows (in the prediction's dtype) and one float64 row sum for its total."""
        if len(hist) == 1:
            return super().mask_law(ctx, hist, t, s)
        h, process = t - s, ctx.process
        rho = t - self.theta * h
        rates, tau = self.mask_rates(self.masked_x0(ctx, hist[0], t) * process.mask_exit_rate(t),
                                     self.masked_x0(ctx, hist[1], rho) * process.mask_exit_rate(rho),
                                     hist[1][:, 0] == process.mask_id, h)
        return torch.exp(-tau * rates.sum(-1, dtype=torch.float64)), rates

    mask_rates: ClassVar[Callable[..., tuple[Tensor, float]]]
    """(mu_n, mu_rho (n, N), y* masked (n,), h) -> stage 2's clipped rates at masked origins and its time step."""


@SAMPLERS.register("theta_trapezoidal")
@dataclass
class ThetaTrapezoidal(_ThetaTwoStage):
    @property
    def coefficients(self) -> tuple[float, float]:
        """(a1, a2) of the module docstring."""
        theta = self.theta
        return 1 / (2 * theta * (1 - theta)), ((1 - theta) ** 2 + theta**2) / (2 * theta * (1 - theta))

    def second_stage(self, ctx, y_n, y_star, mu_n, t, h):
        theta, (a1, a2) = self.theta, self.coefficients
        mu_rho = a1 * self.rates(ctx, y_star, t - theta * h)
        moved = (y_star != y_n).unsqueeze(-1)
        lam = (mu_rho - torch.where(moved, 0.0, a2 * mu_n)).clamp_min(0)  # not (~moved) * a2: float32 a2
        return jump_probs(y_star, lam, (1 - theta) * h)

    def mask_rates(self, mu_n, mu_rho, y_star_masked, h):
        a1, a2 = self.coefficients
        return (a1 * mu_rho - a2 * mu_n).clamp_min(0), (1 - self.theta) * h  # a masked origin y* has not moved

    def stay_bound(self, process, hist, t, s):
        """Stage 2 at a mask: [a1 mu_rho - a2 mu_n]_+ <= a1 mu_rho, whose total is a1 Lambda_rho."""
        if len(hist) == 1:
            return super().stay_bound(process, hist, t, s)
        theta, h = self.theta, t - s
        return math.exp(-(1 - theta) * h * self.coefficients[0] * process.mask_exit_rate(t - theta * h))


@SAMPLERS.register("theta_rk2")
@dataclass
class ThetaRK2(_ThetaTwoStage):
    theta_max_inclusive: ClassVar[bool] = True

    def second_stage(self, ctx, y_n, y_star, mu_n, t, h):
        theta = self.theta
        mu_rho = self.rates(ctx, y_star, t - theta * h)
        lam = ((1 - 1 / (2 * theta)) * mu_n + mu_rho / (2 * theta)).clamp_min(0)
        return jump_probs(y_n, lam.scatter(-1, y_n.unsqueeze(-1), 0.0), h)

    def origin(self, hist):
        return hist[0]  # stage 2 restarts from y_n

    def mask_rates(self, mu_n, mu_rho, y_star_masked, h):
        theta = self.theta
        mu_rho = mu_rho * y_star_masked.unsqueeze(-1)  # no rates out of a clean y*
        return ((1 - 1 / (2 * theta)) * mu_n + mu_rho / (2 * theta)).clamp_min(0), h

    def stay_bound(self, process, hist, t, s):
        """Stage 2 from a mask of y_n: the clipped rates total at most [c]_+ Lambda_n + Lambda_rho / (2 theta)
        (c = 1 - 1/(2 theta)), the second term only where y* is still masked (rates out of a clean y* are 0)."""
        if len(hist) == 1:
            return super().stay_bound(process, hist, t, s)
        theta, h = self.theta, t - s
        first = max(0.0, 1 - 1 / (2 * theta)) * process.mask_exit_rate(t)
        second = process.mask_exit_rate(t - theta * h) / (2 * theta)
        return torch.exp(-h * (first + second * (hist[1] == process.mask_id).double()))
