"""Rotary position embeddings (RoFormer, arXiv 2104.09864), rotate-half convention.

rotate_half(x) = cat(-x2, x1) for x = cat(x1, x2). We fold its sign into the sine table, sin_signed = cat(-sin, sin)
(the angles repeat over the two halves), so x * cos + rotate_half(x) * sin = x * cos + roll(x, D/2) * sin_signed:
one pass fewer over q and k than negating a slice, and the same numbers.

The attention applies it through `rotate_qkv`, one autograd node from the fused qkv projection to q, k, v. Its
backward is the inverse rotation, g * cos - roll(g, D/2) * sin_signed (roll(sin_signed, D/2) = -sin_signed), stacked
with v's gradient into one contiguous (B, L, 3, H, D) gradient in one pass: autograd's own select/slice backwards
would zero-fill one such tensor per q, k and v and add them up, passes the plain (rotary-free) transformer never pays.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


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


def rotate_qkv(qkv: Tensor, cos: Tensor, sin_signed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """qkv (B, L, 3, H, D) -> q, k rotated by angles (L, D) or per row (B, L, D), and v, each (B, H, L, D).

    q and k are views of one (B, L, 2, H, D) tensor and v a view of qkv: the (B, L, H, D) layout SDPA reads
    without a copy. Equal to apply_rotary on q and k up to float rounding (addcmul may round once where it rounds
    twice)."""
    return _RotateQKV.apply(qkv, cos.to(qkv.dtype), sin_signed.to(qkv.dtype))


class _RotateQKV(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv: Tensor, cos: Tensor, sin_signed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ctx.save_for_backward(cos, sin_signed)
        qk = qkv[:, :, :2]  # (B, L, 2, H, D)
        cos5, sin5 = cos[..., None, None, :], sin_signed[..., None, None, :]  # (L | B, L, 1, 1, D)
        rotated = (qk * cos5).addcmul_(qk.roll(qk.shape[-1] // 2, dims=-1), sin5)
        return rotated[:, :, 0].transpose(1, 2), rotated[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_q: Tensor, grad_k: Tensor, grad_v: Tensor) -> tuple[Tensor, None, None]:
        cos, sin_signed = ctx.saved_tensors
        cos4, sin4 = cos[..., None, :], sin_signed[..., None, :]  # (L | B, L, 1, D)
        half = grad_q.shape[-1] // 2
        grads = [(g * cos4).addcmul_(g.roll(half, dims=-1), sin4, value=-1)
                 for g in (grad_q.transpose(1, 2), grad_k.transpose(1, 2))]  # (B, L, H, D) each
        return torch.stack([*grads, grad_v.transpose(1, 2)], dim=2), None, None
