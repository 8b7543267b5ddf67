"""Rotary position embeddings (RoFormer, arXiv 2104.09864), rotate-half convention."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Rotary(nn.Module):
    """positions (L,) -> cos, sin (L, head_dim).

    Computed per call rather than stored as buffers: it costs L * head_dim operations, and a stateless module
    survives meta-device construction (Hugging Face `from_pretrained`) without re-initialization.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        self.head_dim, self.base = head_dim, base

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        exponents = torch.arange(0, self.head_dim, 2, device=positions.device, dtype=torch.float32) / self.head_dim
        angles = positions.float()[:, None] * self.base**-exponents  # (L, head_dim / 2)
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x (B, H, L, D) rotated by angles (L, D) or (B, 1, L, D)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)
