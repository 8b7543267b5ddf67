"""Two-stage (2 NFE per step) reverse CTMC solvers of Ren et al., arXiv 2502.00234 (ALGORITHMS §5.2).

A step goes t -> s = t - h through rho = t - theta h. mu_n = R_t(. ; y_n) and mu_rho = R_rho(. ; y*) are the reverse
rates at the start state and at the stage-1 state; S(y, lambda, tau) is the first-jump stage operator
(tau_leaping.jump_probs) and [.]_+ clips at 0.
* theta-trapezoidal, theta in (0, 1):
      y* = S(y_n, mu_n, theta h),   y_{n+1} = S(y*, [a1 mu_rho - a2 mu_n]_+, (1 - theta) h),
      a1 = 1 / (2 theta (1 - theta)),  a2 = ((1 - theta)^2 + theta^2) / (2 theta (1 - theta))   (a1 - a2 = 1).
  Second order in the step (measured: TV order 2.00 on the masked toy, ALGORITHMS FS-1). A position that already
  jumped in stage 1 uses a1 mu_rho alone (the "drop" variant, ALGORITHMS §5.2): mu_n holds rates out of a state it
  has left. For masked data the two variants agree (a clean token has no rates), for uniform data only "drop" is
  order 2.
* theta-RK-2, theta in (0, 1]:
      y* = S(y_n, mu_n, theta h),   y_{n+1} = S(y_n, [(1 - 1/(2 theta)) mu_n + 1/(2 theta) mu_rho]_+, h)
  (restarts from y_n; theta = 1/2 midpoint, 1 Heun). Only first order on masked data: a position unmasked in stage 1
  gets the O(h)-biased rate (1 - 1/(2 theta)) mu_n. Kept for comparison; prefer theta_trapezoidal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

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
        return self.second_stage(ctx, y_n, y_star, memo["mu_n"], t, h)

    second_stage: ClassVar[Callable[..., Tensor]]
    """(ctx, y_n, y_star, mu_n, t, h) -> jump probabilities of the second stage; each solver defines it."""


@SAMPLERS.register("theta_trapezoidal")
@dataclass
class ThetaTrapezoidal(_ThetaTwoStage):
    def second_stage(self, ctx, y_n, y_star, mu_n, t, h):
        theta = self.theta
        a1 = 1 / (2 * theta * (1 - theta))
        a2 = ((1 - theta) ** 2 + theta**2) / (2 * theta * (1 - theta))
        mu_rho = a1 * self.rates(ctx, y_star, t - theta * h)
        moved = (y_star != y_n).unsqueeze(-1)
        lam = (mu_rho - (~moved) * a2 * mu_n).clamp_min(0)
        return jump_probs(y_star, lam, (1 - theta) * h)


@SAMPLERS.register("theta_rk2")
@dataclass
class ThetaRK2(_ThetaTwoStage):
    theta_max_inclusive: ClassVar[bool] = True

    def second_stage(self, ctx, y_n, y_star, mu_n, t, h):
        theta = self.theta
        mu_rho = self.rates(ctx, y_star, t - theta * h)
        lam = ((1 - 1 / (2 * theta)) * mu_n + mu_rho / (2 * theta)).clamp_min(0)
        return jump_probs(y_n, lam.scatter(-1, y_n.unsqueeze(-1), 0.0), h)
