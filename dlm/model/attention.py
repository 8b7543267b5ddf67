"""Multi-head self-attention with rotary positions: SDPA by default, flash-attn when installed and on GPU, and
FlexAttention for explicit masks with model.attention=flex (as_block_mask; equal to SDPA, tests/block).

Masks: bidirectional (diffusion), causal (AR baseline), or an explicit boolean mask (block / cache layouts).
KV hook: a `kv_cache` object with `update(layer, k, v, positions) -> (k, v)` may read and write keys and values,
so caches (dlm/cache/) and the AR decoder can reuse them without the attention knowing any policy. Keys reach the
hook with rotary already applied at their absolute positions, so a cached key stays valid wherever it is read.
"""

from __future__ import annotations

import importlib.util
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlm.model.rotary import rotate_qkv
from dlm.registry import ConfigError

_HAS_FLASH = importlib.util.find_spec("flash_attn") is not None


class KVHook(Protocol):
    def update(self, layer: int, k: Tensor, v: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """k, v (B, H, L_new, D) at `positions` ((L_new,) or per row (B, L_new)) -> the keys/values to attend to,
        (B, H, L_all, D)."""


def attention_mask(padding: Tensor | None, query_positions: Tensor | None, n_keys: int, *, causal: bool,
                   block_size: int = 0, device: torch.device | None = None) -> Tensor | None:
    """Boolean mask (True = may attend) for queries at `query_positions` (B, n) over keys at positions 0..n_keys-1;
    query_positions None means every position is a query (n = n_keys). padding: bool (B, n_keys), False at padding
    keys, which real queries never attend.

    The pattern is block-causal: a query at position q sees the keys at positions k with k // b <= q // b. Causal is
    b = 1; block_size > 0 sets b (block diffusion's sampling and cache layout, docs/block_diffusion.md); otherwise
    (not causal, block_size 0) every key is visible. A padding query with no real key before it (left padding) sees
    every key instead, so no softmax row is empty (NaN). None when nothing is masked, so the unmasked (is_causal)
    SDPA path stays in use. -> (B | 1, 1, n | 1, n_keys) or None."""
    padding = None if padding is None else padding.bool()
    if not causal and block_size <= 0:
        return None if padding is None else padding[:, None, None, :]
    step = 1 if causal else block_size
    if query_positions is None:
        if padding is None and causal:
            return None
        device = padding.device if padding is not None else device
        query_positions = torch.arange(n_keys, device=device).expand(1 if padding is None else padding.shape[0],
                                                                     n_keys)
    keys = torch.arange(n_keys, device=query_positions.device) // step
    mask = keys <= query_positions[:, None, :, None] // step
    if padding is not None:
        mask = (mask & padding[:, None, None, :]) | ~padding.gather(1, query_positions)[:, None, :, None]
    return mask


def with_padding(pattern: Tensor, padding: Tensor | None) -> Tensor:
    """An explicit pattern (n, n_keys) bool, True = may attend, restricted to the real keys of padding (B, n_keys)
    -> (B | 1, 1, n, n_keys). Queries keep at least their own pattern's keys where every real key is hidden."""
    pattern = pattern.bool()[None, None]
    if padding is None:
        return pattern
    masked = pattern & padding.bool()[:, None, None, :]
    return torch.where(masked.any(-1, keepdim=True), masked, pattern)


def as_block_mask(mask: Tensor) -> object:
    """A boolean mask (B | 1, 1, n, n_keys), True = may attend, as FlexAttention's BlockMask: the same pattern, with
    the key blocks no query of a query block sees skipped (model.attention=flex)."""
    from torch.nn.attention.flex_attention import create_block_mask

    dense = mask[:, 0]
    if dense.shape[0] == 1:
        def mask_mod(b, h, q, k):
            return dense[0, q, k]
    else:
        def mask_mod(b, h, q, k):
            return dense[b, q, k]
    batch = dense.shape[0] if dense.shape[0] > 1 else None
    return create_block_mask(mask_mod, batch, None, dense.shape[1], dense.shape[2], device=mask.device)


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, layer: int, dropout: float = 0.0, use_flash: bool = False):
        super().__init__()
        if d_model % n_heads:
            raise ConfigError(f"model.d_model={d_model} must be divisible by model.n_heads={n_heads}")
        self.n_heads, self.head_dim, self.layer = n_heads, d_model // n_heads, layer
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.dropout = dropout
        self.use_flash = use_flash and _HAS_FLASH

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, *, causal: bool, attn_mask: Tensor | None = None,
                positions: Tensor | None = None, kv_cache: KVHook | None = None) -> Tensor:
        """x (B, L, d) -> (B, L, d). cos, sin: rotary angles (L, D) or per row (B, L, D). attn_mask: bool
        (B or 1, 1, L, L_all), True = may attend."""
        B, L, _ = x.shape
        q, k, v = rotate_qkv(self.qkv(x).view(B, L, 3, self.n_heads, self.head_dim), cos, sin)  # (B, H, L, D)
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer, k, v, positions)
        dropout = self.dropout if self.training else 0.0
        if attn_mask is not None and not isinstance(attn_mask, Tensor):  # a BlockMask (model.attention=flex)
            from torch.nn.attention.flex_attention import flex_attention

            y = flex_attention(q, k, v, block_mask=attn_mask)
        elif self._flash_ok(q, attn_mask, k):
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

