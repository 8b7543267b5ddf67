"""Noise schedules: alpha(t) = P(token untouched at t), sigma(t) = -log alpha(t) ("total noise").

Time runs from t=0 (data) to t=1 (prior). Formulas follow MDLM (arXiv 2406.07524, noise_schedule.py) and SEDD
(arXiv 2310.16834, noise_lib.py); see docs/schedules.md.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from dlm.registry import SCHEDULES


class Schedule(ABC):
    """A monotone map t in [0, 1] -> alpha_t in (0, 1]. Subclasses give sigma and dsigma; the rest derives.

    alpha = exp(-sigma), dalpha = -dsigma * alpha, and the masked-ELBO weight -alpha'/(1-alpha)
    = dsigma / expm1(sigma) (docs/schedules.md), evaluated with expm1 for accuracy near t=0.
    """

    @abstractmethod
    def sigma(self, t: Tensor) -> Tensor:
        """Total noise sigma(t) = -log alpha_t."""

    @abstractmethod
    def dsigma(self, t: Tensor) -> Tensor:
        """Rate sigma'(t)."""

    def alpha(self, t: Tensor) -> Tensor:
        return torch.exp(-self.sigma(t))

    def dalpha(self, t: Tensor) -> Tensor:
        return -self.dsigma(t) * self.alpha(t)

    def masked_weight(self, t: Tensor) -> Tensor:
        """-alpha'_t / (1 - alpha_t) = sigma'(t) / expm1(sigma(t)): the MDLM/MD4 ELBO weight."""
        return self.dsigma(t) / torch.expm1(self.sigma(t))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


@SCHEDULES.register("loglinear")
class LogLinear(Schedule):
    """alpha_t = 1 - (1-eps) t; sigma = -log1p(-(1-eps) t). Weight -alpha'/(1-alpha) = 1/t exactly."""

    def __init__(self, eps: float = 1e-3):
        self.eps = eps

    def sigma(self, t: Tensor) -> Tensor:
        return -torch.log1p(-(1 - self.eps) * t)

    def dsigma(self, t: Tensor) -> Tensor:
        return (1 - self.eps) / (1 - (1 - self.eps) * t)

    def alpha(self, t: Tensor) -> Tensor:
        return 1 - (1 - self.eps) * t

    def dalpha(self, t: Tensor) -> Tensor:
        return torch.full_like(t, -(1 - self.eps))

    def masked_weight(self, t: Tensor) -> Tensor:
        return 1 / t


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    """alpha_t = eps + (1-eps) cos(pi t / 2) (MDLM `cosine`)."""

    def __init__(self, eps: float = 1e-3):
        self.eps = eps

    def alpha(self, t: Tensor) -> Tensor:
        return self.eps + (1 - self.eps) * torch.cos(math.pi / 2 * t)

    def dalpha(self, t: Tensor) -> Tensor:
        return -(1 - self.eps) * (math.pi / 2) * torch.sin(math.pi / 2 * t)

    def sigma(self, t: Tensor) -> Tensor:
        return -torch.log(self.alpha(t))

    def dsigma(self, t: Tensor) -> Tensor:
        return -self.dalpha(t) / self.alpha(t)

    def masked_weight(self, t: Tensor) -> Tensor:
        return -self.dalpha(t) / (1 - self.alpha(t))


@SCHEDULES.register("linear")
class Linear(Schedule):
    """sigma(t) = sigma_min + t (sigma_max - sigma_min) (MDLM `linear`, config 1e-3 and 7.0)."""

    def __init__(self, sigma_min: float = 1e-3, sigma_max: float = 7.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min + t * (self.sigma_max - self.sigma_min)

    def dsigma(self, t: Tensor) -> Tensor:
        return torch.full_like(t, self.sigma_max - self.sigma_min)


@SCHEDULES.register("geometric")
class Geometric(Schedule):
    """sigma = sigma_min^(1-t) sigma_max^t, sigma' = sigma log(sigma_max/sigma_min) (SEDD uniform graph: 1e-4, 20)."""

    def __init__(self, sigma_min: float = 1e-4, sigma_max: float = 20.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min ** (1 - t) * self.sigma_max**t

    def dsigma(self, t: Tensor) -> Tensor:
        return self.sigma(t) * math.log(self.sigma_max / self.sigma_min)


def build_schedule(name: str, *, eps: float = 1e-3, sigma_min: float = 1e-4, sigma_max: float = 20.0) -> Schedule:
    """Build a registered schedule from the flat ScheduleConfig fields, passing each the arguments it takes."""
    factory = SCHEDULES.get_factory(name)
    if factory in (LogLinear, Cosine):
        return factory(eps=eps)
    return factory(sigma_min=sigma_min, sigma_max=sigma_max)
