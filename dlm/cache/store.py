"""KVStore: per-layer key/value buffers and a per-position validity mask. Storage only; no policy.

Layer i holds keys and values (B, H, C + 1, D) for positions 0..C-1 of every row, rotary already applied (the
backbone's KV hook sees keys at their absolute positions, dlm/model/attention.py), plus one scratch slot at index C
that absorbs the writes of padding queries (rows that recompute fewer positions than the widest row). `valid`
(B, C) says which stored positions a policy may read instead of recomputing; policies set it, the store never does.
"""

from __future__ import annotations

import torch
from torch import Tensor


class KVStore:
    """Buffers grow on demand to the longest sequence seen; `reset` empties them (a new generate run)."""

    def __init__(self):
        self.keys: dict[int, Tensor] = {}
        self.values: dict[int, Tensor] = {}
        self.valid: Tensor | None = None

    @property
    def capacity(self) -> int:
        """C: positions 0..C-1 are stored; index C is the scratch slot."""
        return 0 if self.valid is None else self.valid.shape[1]

    def reset(self) -> None:
        self.keys, self.values, self.valid = {}, {}, None

    def reserve(self, batch: int, length: int, device: torch.device) -> None:
        """Make room for (batch, length) positions, keeping what is stored; a new batch size starts empty."""
        if self.valid is not None and self.valid.shape[0] != batch:
            self.reset()
        if length <= self.capacity:
            return
        valid = torch.zeros(batch, length, dtype=torch.bool, device=device)
        if self.valid is not None:
            valid[:, :self.capacity] = self.valid
        for buffers in (self.keys, self.values):
            for layer, old in buffers.items():
                buffers[layer] = _grown(old, length)
        self.valid = valid

    def write(self, layer: int, k: Tensor, v: Tensor, index: Tensor | None = None) -> None:
        """Store k, v (B, H, n, D) at positions index (B, n) (entries equal to C go to the scratch slot), or at
        positions 0..n-1 when index is None."""
        if layer not in self.keys:
            shape = (k.shape[0], k.shape[1], self.capacity + 1, k.shape[3])
            self.keys[layer] = k.new_zeros(shape)
            self.values[layer] = v.new_zeros(shape)
        keys, values = self.keys[layer], self.values[layer]
        if index is None:
            keys[:, :, :k.shape[2]] = k
            values[:, :, :v.shape[2]] = v
            return
        where = index[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])
        keys.scatter_(2, where, k.to(keys.dtype))
        values.scatter_(2, where, v.to(values.dtype))

    def read(self, layer: int, length: int) -> tuple[Tensor, Tensor]:
        """Keys and values of positions 0..length-1: views (B, H, length, D)."""
        return self.keys[layer][:, :, :length], self.values[layer][:, :, :length]


def _grown(buffer: Tensor, length: int) -> Tensor:
    """(B, H, C + 1, D) -> (B, H, length + 1, D) with the first C positions kept."""
    out = buffer.new_zeros(buffer.shape[0], buffer.shape[1], length + 1, buffer.shape[3])
    out[:, :, :buffer.shape[2] - 1] = buffer[:, :, :-1]
    return out
