"""dKV-Cache (Ma, Yu, Fang, Wang; arXiv 2505.15781): delayed key/value caching for masked diffusion LMs.

Bidirectional attention means a token's keys/values change whenever any other token changes, so no cache is
exact; dKV-Cache bets that a decoded token's K/V drift slowly, and refreshes everything every k calls.

dkv_decode (ALGORITHMS §6.1). With D_c = {l : x_c^l != m} the decoded positions (prompt included) at call c:
    recompute at call c = the masks of x_c  and  D_c minus D_{c-1} (decoded since the last call),
    readable after call c = D_c.
The one-step delay: a token decoded after call c had its K/V computed as a mask, so it is recomputed once at c + 1,
now as itself, and read from then on. Each block starts with a full forward (the reference resets its cache per
block), and so does every `refresh_every`-th call of a block (the reference's cache_reloading_step). Default 16:
with LLaDA's blocks of 32 decoded at 2 tokens per step that is one full forward per block, the refresh rate of
Fast-dLLM's caches; scripts/bench_cache.py measures the curve (README, "KV caches").

Two block-wise options for semi-AR decoding (the paper recomputes every mask, so its calls cost about the number
of masks left, a half of L on average for unprompted generation):
  block_only=True: recompute only the masks of the current block, reading the masks after it as the last full
    forward left them, as Fast-dLLM's DualCache reads its suffix (arXiv 2505.22618): a call costs about a block;
  refresh_at_block=False: no full forward at block starts; the calls are counted across blocks, so refresh_every
    is the number of calls between full forwards for the whole run (the first call is always full). A new block's
    first call then recomputes its masks and the previous block's last decoded tokens, like any other call.

dkv_greedy (§6.2), the aggressive variant: every position is readable (stale K/V of masks included) and a call
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
    the uncached logits); block_only: recompute the masks of the current block only (the others read stale);
    refresh_at_block: a full forward at the start of every block."""

    def __init__(self, refresh_every: int = 16, block_only: bool = False, refresh_at_block: bool = True):
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
