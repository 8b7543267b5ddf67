"""Time grids for reverse sampling: t_0 = 1 > t_1 > ... > t_steps = eps; step i goes t_i -> s = t_{i+1}.

MDLM / SEDD / RADD all use linspace(1, eps, steps + 1) with eps = 1e-5 (docs/samplers.md), a different
eps from the training one: it keeps sigma'(t) / expm1(sigma(t)) finite. The final noise removal then jumps t_steps -> 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.registry import ConfigError


@dataclass(frozen=True)
class TimeGrid:
    """times: float64 (steps + 1,), decreasing. Read it through t(i) / s(i), never by index arithmetic elsewhere."""

    times: Tensor

    @classmethod
    def linear(cls, steps: int, eps: float = 1e-5, t_max: float = 1.0) -> TimeGrid:
        """linspace(t_max, eps, steps + 1): uniform steps of (t_max - eps) / steps."""
        if steps < 1:
            raise ConfigError(f"steps must be at least 1, got {steps}")
        if not 0 <= eps < t_max:
            raise ConfigError(f"the time grid needs 0 <= eps < t_max, got eps={eps}, t_max={t_max}")
        return cls(torch.linspace(t_max, eps, steps + 1, dtype=torch.float64))

    @property
    def steps(self) -> int:
        return len(self.times) - 1

    def t(self, i: int) -> float:
        """Start time of step i."""
        return float(self.times[i])

    def s(self, i: int) -> float:
        """End time of step i (s < t)."""
        return float(self.times[i + 1])

    @property
    def end(self) -> float:
        """The time the last step reaches; noise removal starts here."""
        return float(self.times[-1])
