"""Training-time samplers of t in [eps, 1] (docs/masked.md#time-sampling), registered in TIME_SAMPLERS.

stratified: u_i = (U_i + i)/n, one draw per stratum with its own jitter (MDLM "antithetic", the default).
vdm:        u_i = (U + i/n) mod 1, a single shared offset (VDM / MD4 / RADD).
uniform:    u_i = U_i i.i.d. (SEDD).
Then t = (1 - eps) u + eps (MDLM: the density 1/(1-eps) is not corrected; the t < eps part is dropped).
An objective builds its sampler once from `objective.time_sampler` (get_time_sampler); each step calls it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from dlm.registry import TIME_SAMPLERS

Device = torch.device | str | None


class TimeSampler(ABC):
    """u(n) -> (n,) float64 values in [0, 1); t(n, eps) -> (n,) float32 times (1 - eps) u + eps."""

    @abstractmethod
    def u(self, n: int, *, generator: torch.Generator | None = None, device: Device = None) -> Tensor:
        """(n,) float64 values in [0, 1)."""

    def t(self, n: int, eps: float, *, generator: torch.Generator | None = None, device: Device = None) -> Tensor:
        return ((1 - eps) * self.u(n, generator=generator, device=device) + eps).float()


@TIME_SAMPLERS.register("uniform")
class IID(TimeSampler):
    def u(self, n, *, generator=None, device=None):
        return torch.rand(n, generator=generator, device=device, dtype=torch.float64)


@TIME_SAMPLERS.register("stratified")
class Stratified(TimeSampler):
    def u(self, n, *, generator=None, device=None):
        strata = torch.arange(n, device=device, dtype=torch.float64)
        return (torch.rand(n, generator=generator, device=device, dtype=torch.float64) + strata) / n


@TIME_SAMPLERS.register("vdm")
class SharedOffset(TimeSampler):
    def u(self, n, *, generator=None, device=None):
        strata = torch.arange(n, device=device, dtype=torch.float64)
        offset = torch.rand(1, generator=generator, device=device, dtype=torch.float64)
        return (offset + strata / n) % 1.0


def get_time_sampler(name: str) -> TimeSampler:
    """The registered time sampler `name` (stratified | uniform | vdm); a one-line ConfigError otherwise."""
    return TIME_SAMPLERS.build(name)
