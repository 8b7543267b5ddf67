"""Training-time samplers of t in [eps, 1] (ALGORITHMS §1.4, §1.8, §10.2).

stratified: u_i = (U_i + i)/n, one draw per stratum with its own jitter (MDLM "antithetic", the default).
vdm:        u_i = (U + i/n) mod 1, a single shared offset (VDM / MD4 / RADD).
uniform:    u_i = U_i i.i.d. (SEDD).
Then t = (1 - eps) u + eps (MDLM: the density 1/(1-eps) is not corrected; the t < eps part is dropped).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.registry import ConfigError


def sample_u(kind: str, n: int, *, generator: torch.Generator | None = None,
             device: torch.device | str | None = None) -> Tensor:
    """(n,) float64 values in [0, 1) drawn by the named scheme."""
    if kind == "uniform":
        return torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    strata = torch.arange(n, device=device, dtype=torch.float64)
    if kind == "stratified":
        return (torch.rand(n, generator=generator, device=device, dtype=torch.float64) + strata) / n
    if kind == "vdm":
        offset = torch.rand(1, generator=generator, device=device, dtype=torch.float64)
        return (offset + strata / n) % 1.0
    raise ConfigError(f"unknown time_sampler '{kind}'; choose one of: stratified, uniform, vdm")


def sample_t(kind: str, n: int, eps: float, *, generator: torch.Generator | None = None,
             device: torch.device | str | None = None) -> Tensor:
    """(n,) float32 times t = (1 - eps) u + eps."""
    return ((1 - eps) * sample_u(kind, n, generator=generator, device=device) + eps).float()
