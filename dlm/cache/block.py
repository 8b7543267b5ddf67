"""The exact KV cache of block diffusion (BD3LM, arXiv 2503.09573 §3.3; docs/block_diffusion.md).

A block model's keys/values at a position depend only on the clean tokens of its own and earlier blocks (the x_0
stream of training, block-causal). So a position's K/V become readable only once they were computed on a window with
no mask left: the call the block sampler makes on each finished block, the clean block attending to the stored
prefix and to itself. Every other call recomputes what is not stored, which is the current (noisy) block:
    recompute = {p < l : p not stored},   stored after a call whose window x[:, :l] holds no mask = {p < l}.
Which stored keys a query may see is the model's block-causal pattern at the query positions (Objective.attention_
mask): a query of the last block of the window sees every key of it. A noisy block's own K/V are written and read in
its calls but never marked stored, so every stored entry equals what the training forward's x_0 stream computes.
With the block sampler's sliding window (window > 0) the stored slots are window positions: when the window moves,
`forget` makes every slot unreadable and the sampler's next (clean) call over the window's prefix refills them.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from dlm.cache.base import CacheableDenoiser, CachePolicy, require_masked
from dlm.registry import CACHES, ConfigError
from dlm.types import Prediction


@CACHES.register("block")
class BlockCache(CachePolicy):
    def check(self, process) -> None:
        require_masked("block", process)
        self.mask_id = process.mask_id

    def select(self, xt: Tensor) -> Tensor:
        return ~self.store.valid[:, :xt.shape[1]]

    def predict(self, model: CacheableDenoiser, xt: Tensor, t: Tensor | None, **kwargs: Any) -> Prediction:
        """CachePolicy.predict, refusing a window longer than the model's max_len: its calls pass explicit positions,
        which the backbone does not check, and a model knows no position past max_len."""
        max_len = getattr(getattr(getattr(model, "backbone", None), "cfg", None), "max_len", 0)
        if max_len and xt.shape[1] > max_len:
            raise ConfigError(f"a window of {xt.shape[1]} tokens exceeds the model's max_len={max_len}: decode with "
                              f"the block sampler's sliding window (window={max_len}) to go further")
        return super().predict(model, xt, t, **kwargs)

    def forget(self) -> None:
        """Nothing stored is readable any more (a sliding window moved: every position's keys/values change)."""
        if self.store.valid is not None:
            self.store.valid[:] = False

    def commit(self, xt: Tensor, recomputed: Tensor) -> None:
        if not bool((xt == self.mask_id).any()):
            self.store.valid[:, :xt.shape[1]] = True
