"""Multi-head self-attention with rotary positions: SDPA by default, flash-attn when installed and on GPU.

Masks: bidirectional (diffusion), causal (AR baseline), or an explicit boolean mask (block / cache layouts).
KV hook: a `kv_cache` object with `update(layer, k, v, positions) -> (k, v)` may read and write keys and values,
so caches (dlm/cache/) and the AR decoder can reuse them without the attention knowing any policy.
"""

from __future__ import annotations

import importlib.util
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlm.model.rotary import apply_rotary

_HAS_FLASH = importlib.util.find_spec("flash_attn") is not None


class KVHook(Protocol):
    def update(self, layer: int, k: Tensor, v: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """k, v (B, H, L_new, D) at `positions` (L_new,) -> the keys/values to attend to, (B, H, L_all, D)."""


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, layer: int, dropout: float = 0.0, use_flash: bool = False):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.n_heads, self.head_dim, self.layer = n_heads, d_model // n_heads, layer
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.dropout = dropout
        self.use_flash = use_flash and _HAS_FLASH

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, *, causal: bool, attn_mask: Tensor | None = None,
                positions: Tensor | None = None, kv_cache: KVHook | None = None) -> Tensor:
        """x (B, L, d) -> (B, L, d). attn_mask: bool (B or 1, 1, L, L_all), True = may attend."""
        B, L, _ = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, D)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer, k, v, positions)
        dropout = self.dropout if self.training else 0.0
        if self._flash_ok(q, attn_mask, k):
            from flash_attn import flash_attn_func

            y = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_p=dropout,
                                causal=causal).transpose(1, 2)
        elif causal and attn_mask is None and k.shape[2] != L:
            # decoding with a cache: queries sit at the end of the key sequence
            offset = k.shape[2] - L
            mask = torch.ones(L, k.shape[2], dtype=torch.bool, device=x.device).tril(diagonal=offset)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout,
                                               is_causal=causal and attn_mask is None)
        return self.out(y.transpose(1, 2).reshape(B, L, -1))

    def _flash_ok(self, q: Tensor, attn_mask: Tensor | None, k: Tensor) -> bool:
        return (self.use_flash and q.is_cuda and attn_mask is None and q.dtype in (torch.float16, torch.bfloat16)
                and k.shape[2] == q.shape[2])
