"""Rotary position embeddings (RoFormer, arXiv 2104.09864), rotate-half convention.

rotate_half(x) = cat(-x2, x1) for x = cat(x1, x2). We fold its sign into the sine table, sin_signed = cat(-sin, sin)
(the angles repeat over the two halves), so x * cos + rotate_half(x) * sin = x * cos + roll(x, D/2) * sin_signed:
one pass fewer over q and k than negating a slice, and the same numbers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Rotary(nn.Module):
    """positions (L,) -> cos, sin_signed (L, head_dim), computed once per forward and shared by every layer.

    Computed per call rather than stored as buffers: it costs L * head_dim operations, and a stateless module
    survives meta-device construction (Hugging Face `from_pretrained`) without re-initialization.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        self.head_dim, self.base = head_dim, base

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        exponents = torch.arange(0, self.head_dim, 2, device=positions.device, dtype=torch.float32) / self.head_dim
        angles = positions.float()[:, None] * self.base**-exponents  # (L, head_dim / 2)
        sin = angles.sin()
        return torch.cat([angles, angles], dim=-1).cos(), torch.cat([-sin, sin], dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin_signed: Tensor) -> Tensor:
    """x (..., L, D) rotated by angles (L, D) or (B, 1, L, D) (broadcast from the right); q and k may come stacked."""
    return x * cos.to(x.dtype) + x.roll(x.shape[-1] // 2, dims=-1) * sin_signed.to(x.dtype)
