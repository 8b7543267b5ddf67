"""Rotary position embeddings (RoFormer, arXiv 2104.09864), rotate-half convention.

rotate_half(x) = cat(-x2, x1) for x = cat(x1, x2). We fold its sign into the sine table, sin_signed = cat(-sin, sin)
(the angles repeat over the two halves), so x * cos + rotate_half(x) * sin = x * cos + roll(x, D/2) * sin_signed.
`apply_rotary` forms it as x * cos followed by one in-place addcmul per half (the rolled x is two views of x): three
kernels and no rolled copy.

The attention applies it through `rotate_qkv`, one autograd node from the fused qkv projection to q, k, v. Its
backward is the inverse rotation, g * cos - roll(g, D/2) * sin_signed (roll(sin_signed, D/2) = -sin_signed), run in
the (B, H, L, D) layout SDPA's gradients come in (contiguous halves) and written with v's gradient straight into one
contiguous (B, L, 3, H, D) gradient: autograd's own select/slice backwards would zero-fill one such tensor per q, k
and v and add them up, passes the plain (rotary-free) transformer never pays.
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
    """x * cos + roll(x, D/2) * sin_signed for x (..., D) and angles broadcastable against it from the right
    ((L, D) or (B, 1, L, D) for x (..., L, D)); q and k may come stacked. A new tensor (in-place only on it)."""
    half = x.shape[-1] // 2
    cos, sin_signed = cos.to(x.dtype), sin_signed.to(x.dtype)
    out = x * cos
    out[..., :half].addcmul_(x[..., half:], sin_signed[..., :half])
    out[..., half:].addcmul_(x[..., :half], sin_signed[..., half:])
    return out


def rotate_qkv(qkv: Tensor, cos: Tensor, sin_signed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """qkv (B, L, 3, H, D) -> q, k rotated by angles (L, D) or per row (B, L, D), and v, each (B, H, L, D).

    q and k are views of one (B, L, 2, H, D) tensor and v a view of qkv: the (B, L, H, D) layout SDPA reads
    without a copy. Its q and k are apply_rotary's, bit for bit."""
    return _RotateQKV.apply(qkv, cos.to(qkv.dtype), sin_signed.to(qkv.dtype))


class _RotateQKV(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv: Tensor, cos: Tensor, sin_signed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ctx.save_for_backward(cos, sin_signed)
        qk = qkv[:, :, :2]  # (B, L, 2, H, D)
        rotated = apply_rotary(qk, cos[..., None, None, :], sin_signed[..., None, None, :])  # (L | B, L, 1, 1, D)
        return rotated[:, :, 0].transpose(1, 2), rotated[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_q: Tensor, grad_k: Tensor, grad_v: Tensor) -> tuple[Tensor, None, None]:
        cos, sin_signed = ctx.saved_tensors
        cos4, sin4 = cos.unsqueeze(-3), -sin_signed.unsqueeze(-3)  # (1 | B, 1, L, D): the inverse rotation
        B, H, L, D = grad_q.shape
        grad = grad_q.new_empty(B, L, 3, H, D)
        for i, g in enumerate((grad_q, grad_k)):  # rotated in SDPA's (B, H, L, D) gradient layout, then written
            grad[:, :, i] = apply_rotary(g, cos4, sin4).transpose(1, 2)  # once into its slot (no stack)
        grad[:, :, 2] = grad_v.transpose(1, 2)
        return grad, None, None
