"""What a DICE inversion records (He et al., arXiv 2410.08207; docs/dice.md): the nested masking pattern, the
fixed noise tokens eta, the latent residuals at the editable positions, and the settings that replay them.

Masking pattern. One u_d ~ U(0, 1) per position and levels r_k = tau k / (K - 1), k = 0..K-1 (the release's
linspace(0, tau, K)); M_k = {d editable : u_d <= r_k}, so M_0 ⊆ M_1 ⊆ ... ⊆ M_{K-1} and |M_{K-1}| / |editable| -> tau.
It is stored as `level` (B, L): the first k with d in M_k, or K for positions never masked, so M_k = {level <= k}.
State x_k = eta on M_k and x0 elsewhere (drawn directly from x0; no sampler runs).
Residuals z_k = l* - l(x_k, t_k) / T, (K, E, N) for the E editable positions in row-major order (float32 by default,
float16 on request); the other positions are never changed, so they need none.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor

from dlm.process.base import Process
from dlm.registry import ConfigError


@dataclass
class Trace:
    """The inversion of a batch x0 (B, L). `times` (K,) are the model times t_k with 1 - alpha(t_k) = r_k."""

    source: Tensor  # (B, L) long: x0
    eta: Tensor  # (B, L) long: the fixed noise tokens (mask id, or uniform ids drawn once)
    level: Tensor  # (B, L) long in [0, K]: first masking step, K = never masked
    editable: Tensor  # (B, L) bool
    residuals: Tensor  # (K, E, N) float32 | float16
    times: Tensor  # (K,) float64
    process: Process
    tau: float
    target: str
    temperature: float
    settings: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return int(self.times.shape[0])

    def masked(self, k: int) -> Tensor:
        """M_k as bool (B, L)."""
        return self.level <= k

    def state(self, k: int) -> Tensor:
        """The recorded noisy state x_k (B, L)."""
        return torch.where(self.masked(k), self.eta, self.source)

    def residual(self, k: int, like: Tensor) -> Tensor:
        """z_k scattered onto the full (B, L, N) grid in like's dtype, zero outside the editable span."""
        full = torch.zeros(*self.source.shape, self.residuals.shape[-1], dtype=like.dtype, device=like.device)
        full[self.editable] = self.residuals[k].to(like.dtype)
        return full

    @property
    def nbytes(self) -> int:
        """Bytes held by the trace's tensors (residuals dominate: K * E * N * element size)."""
        return sum(getattr(self, f.name).numel() * getattr(self, f.name).element_size()
                   for f in fields(self) if isinstance(getattr(self, f.name), Tensor))

    def __len__(self) -> int:
        return int(self.source.shape[0])

    def select(self, rows: Tensor | list[int]) -> Trace:
        """The trace of a subset of rows (repeats allowed), e.g. trace.select([2]) to edit row 2 alone."""
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.source.device)
        counts = self.editable.sum(1)
        starts = torch.cumsum(counts, 0) - counts
        entries = torch.cat([torch.arange(int(starts[r]), int(starts[r] + counts[r]), device=rows.device)
                             for r in rows.tolist()]) if len(rows) else torch.zeros(0, dtype=torch.long)
        return replace(self, source=self.source[rows], eta=self.eta[rows], level=self.level[rows],
                       editable=self.editable[rows], residuals=self.residuals[:, entries])


def masking_levels(u: Tensor, ratios: Tensor) -> Tensor:
    """level_d = #{k : r_k < u_d}: the first k with u_d <= r_k, or K when u_d > tau.  u (B, L), ratios (K,)."""
    return (u.unsqueeze(-1) > ratios.to(u.dtype)).sum(-1)


def editable_mask(editable: Tensor | None, x0: Tensor) -> Tensor:
    """bool (B, L) from None (everything), (B, L) or (1, L); a one-line error for any other shape."""
    if editable is None:
        return torch.ones_like(x0, dtype=torch.bool)
    editable = torch.as_tensor(editable, device=x0.device).bool()
    if editable.ndim != 2 or editable.shape[1] != x0.shape[1] or editable.shape[0] not in (1, x0.shape[0]):
        raise ConfigError(f"editable must be bool (B, L) or (1, L) matching x0 {tuple(x0.shape)}, "
                          f"got {tuple(editable.shape)}")
    return editable.expand_as(x0).clone()


def time_at_alpha(process: Process, alpha: Tensor, iterations: int = 64) -> Tensor:
    """The model time t in [0, 1] with alpha(t) = alpha, by bisection (alpha is decreasing); t = 1 where the
    schedule never gets that low (LogLinear's alpha(1) = eps > 0 at tau = 1).  alpha (K,) float64 -> (K,)."""
    lo, hi = torch.zeros_like(alpha), torch.ones_like(alpha)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        above = process.schedule.alpha(mid) > alpha  # still too clean: go later
        lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
    hi = torch.where(alpha >= 1, torch.zeros_like(alpha), hi)  # r_0 = 0: the clean input at t = 0 exactly
    return torch.where(alpha <= process.schedule.alpha(torch.ones_like(alpha)), torch.ones_like(alpha), hi)
