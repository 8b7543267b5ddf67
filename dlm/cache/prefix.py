"""Fast-dLLM prefix and dual caches (Wu et al., arXiv 2505.22618; docs/caches.md) for (semi-AR) block decoding.

Row b's current block spans [a_b, e_b): from its first to past its last editable position in the block that
generate announced (`begin_block`; without blocks, the whole generated region). The first call of each block is a
full forward that stores every position's keys/values; the block's other calls recompute
    prefix cache:  positions >= a_b   (the block and everything after it; the prefix [0, a_b) is read),
    dual cache:    positions in [a_b, e_b)   (the block only; prefix and suffix are read),
and the read K/V stay as the block's first call left them, until the next block (or every `refresh_every` calls).
Without semi-AR blocks this is "the prompt's K/V computed once". Stale parts: the prefix attends bidirectionally
to tokens decoded since, and the dual cache's suffix K/V are those of masks, as in the reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.cache.base import CachePolicy, require_masked
from dlm.registry import CACHES


@CACHES.register("prefix")
class PrefixCache(CachePolicy):
    """dual: also read the suffix after the block (Fast-dLLM DualCache, also registered as "dual");
    refresh_every: extra full forwards."""

    def __init__(self, dual: bool = False, refresh_every: int = 0):
        super().__init__(refresh_every)
        self.dual = dual

    def check(self, process) -> None:
        require_masked("prefix", process)

    def select(self, xt: Tensor) -> Tensor:
        return self._block(xt)

    def commit(self, xt: Tensor, recomputed: Tensor) -> None:
        self.store.valid[:, :xt.shape[1]] = ~self._block(xt)

    def _block(self, xt: Tensor) -> Tensor:
        """bool (B, L): [a_b, e_b) (dual) or [a_b, L) (prefix) of each row; empty for a row with nothing to edit."""
        L = xt.shape[1]
        editable = self.editable[:, :L] if self.editable is not None else xt == self.process.mask_id
        columns = torch.arange(L, device=xt.device)
        first = torch.where(editable, columns, L).min(-1).values[:, None]
        if not self.dual:
            return columns >= first
        last = torch.where(editable, columns, -1).max(-1).values[:, None]
        return (columns >= first) & (columns <= last)


@CACHES.register("dual")
class DualCache(PrefixCache):
    """PrefixCache(dual=True) under its own name, for `--cache dual`."""

    def __init__(self, refresh_every: int = 0):
        super().__init__(dual=True, refresh_every=refresh_every)
