"""dKV-Cache (Ma, Yu, Fang, Wang; arXiv 2505.15781): delayed key/value caching for masked diffusion LMs.

Bidirectional attention means a token's keys/values change whenever any other token changes, so no cache is
exact; dKV-Cache bets that a decoded token's K/V drift slowly, and refreshes everything every k calls.

dkv_decode (docs/caches.md#dkv-cache). With D_c = {l : x_c^l != m} the decoded positions (prompt included) at call c:
    recompute at call c = the masks of x_c  and  D_c minus D_{c-1} (decoded since the last call),
    readable after call c = D_c.
The one-step delay: a token decoded after call c had its K/V computed as a mask, so it is recomputed once at c + 1,
now as itself, and read from then on. Each block starts with a full forward (the reference resets its cache per
block), and so does every `refresh_every`-th call of a block (the reference's cache_reloading_step).

Block-wise recomputation (block_only, default True). The paper recomputes every mask, so with semi-AR blocks a call
costs about the number of masks left (half of L on average for unprompted generation: 1.65x faster than no cache at
L = 512, batch 1). block_only=True recomputes only the masks of the current block and reads the masks after it as
the block's full forward left them, as Fast-dLLM's DualCache reads its suffix (arXiv 2505.22618): a call costs
about a block (4.1x at batch 1, 6.9x at batch 8) at the same measured gen-PPL and entropy (benchmarks/README.md;
scripts/bench/cache.py). Without blocks the current block is every generated position, and both rules agree.
refresh_every default 16: with blocks of 32 at 2-4 tokens per step that is one full forward per block, the refresh
rate of Fast-dLLM's caches; more frequent refreshes cost speed without a measurable quality gain on the curve.
refresh_at_block=False drops the full forward at block starts: calls are counted over the run, so refresh_every
is the number of calls between full forwards (the first call is always full), and a block's first call
recomputes its masks and the previous block's last decoded tokens like any other call. Faster (9.6x at batch 8),
but it moved gen-PPL by -2.6% (L = 512) and +9.9% (L = 128) and lowered the entropy, so it is not the default.

dkv_greedy (docs/caches.md), the aggressive variant: every position is readable (stale K/V of masks included) and a call
recomputes only the tokens decoded since the last call, the masked positions expected to be decoded at this call,
and the still-masked positions within `window` of those. The reference fixes the decoding order in advance
(random remasking only); here, for any confidence rule, the expected positions are the q_b most confident masked
positions of the stored prediction, q_b = the number row b decoded at the previous step (at least 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dlm.cache.base import CachePolicy, require_masked
from dlm.registry import CACHES, ConfigError


@CACHES.register("dkv_decode")
class DKVDecode(CachePolicy):
    """refresh_every: a full forward every k calls (of a block, or of the run when not refresh_at_block; 1 = always:
    the uncached logits); block_only: recompute the masks of the current block only (the others read stale;
    False: every mask, as the paper); refresh_at_block: a full forward at the start of every block."""

    def __init__(self, refresh_every: int = 16, block_only: bool = True, refresh_at_block: bool = True):
        super().__init__(refresh_every)
        self.block_only, self.refresh_at_block = bool(block_only), bool(refresh_at_block)

    def check(self, process) -> None:
        require_masked("dkv_decode", process)

    def begin_block(self, editable: Tensor) -> None:
        calls = self.calls
        super().begin_block(editable)
        if not self.refresh_at_block:
            self.calls = calls

    def select(self, xt: Tensor) -> Tensor:
        L = xt.shape[1]
        recompute = ~self.store.valid[:, :L]  # masks and the tokens decoded since the last call
        if self.block_only and self.editable is not None:
            recompute &= (xt != self.process.mask_id) | self.editable[:, :L]
        return recompute

    def commit(self, xt: Tensor, recomputed: Tensor) -> None:
        self.store.valid[:, :xt.shape[1]] = xt != self.process.mask_id


@CACHES.register("dkv_greedy")
class DKVGreedy(CachePolicy):
    """refresh_every: full forward every k calls; window: masked neighbours recomputed on each side of a position
    expected to be decoded."""

    def __init__(self, refresh_every: int = 4, window: int = 2):
        if window < 0:
            raise ConfigError(f"window must be >= 0, got {window}")
        super().__init__(refresh_every)
        self.window = window

    def reset(self) -> None:
        super().reset()
        self.previous: Tensor | None = None

    def check(self, process) -> None:
        require_masked("dkv_greedy", process)

    def select(self, xt: Tensor) -> Tensor:
        L = xt.shape[1]
        masked = xt == self.process.mask_id
        if self.editable is not None:
            masked &= self.editable[:, :L]
        changed = xt != self.previous
        expected = changed.sum(-1).clamp_min(1)  # (B,)
        confidence = self.stored_confidence(L).double().masked_fill(~masked, float("-inf"))
        order = confidence.argsort(dim=-1, descending=True, stable=True)
        rank = torch.empty_like(order).scatter_(-1, order, torch.arange(L, device=xt.device).expand_as(order))
        next_up = (rank < expected[:, None]) & masked
        near = F.max_pool1d(next_up.float()[:, None], 2 * self.window + 1, stride=1, padding=self.window)[:, 0] > 0
        return changed | next_up | (near & masked)

    def commit(self, xt: Tensor, recomputed: Tensor) -> None:
        self.store.valid[:, :xt.shape[1]] = True
        self.previous = xt.clone()
