"""Broadcasting of per-sequence quantities (time, alpha, sigma) against token tensors. Exists once."""

from __future__ import annotations

from torch import Tensor


def per_sequence(value: Tensor, ndim: int) -> Tensor:
    """(B,) -> (B, 1, ..., 1) with `ndim` dimensions in total, so it broadcasts over positions (and classes)."""
    return value.reshape(value.shape[0], *([1] * (ndim - 1)))
