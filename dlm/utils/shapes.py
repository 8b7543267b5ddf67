"""Broadcasting of per-sequence quantities (time, alpha, sigma) against token tensors. Exists once."""

from __future__ import annotations

from torch import Tensor


def per_sequence(value: Tensor, ndim: int) -> Tensor:
    """(B,) -> (B, 1, ..., 1) with `ndim` dimensions in total, so it broadcasts over positions (and classes); a
    per-token value (B, L) (block diffusion's one time per block, repeated over its tokens) -> (B, L, 1, ..., 1)."""
    lead = value.shape[:2] if value.dim() == 2 else value.shape[:1]
    return value.reshape(*lead, *([1] * (ndim - len(lead))))
