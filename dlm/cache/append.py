"""The standard key/value cache of autoregressive decoding: append-only, exact.

A causal model's keys/values at position p depend on tokens 0..p only, so once computed they never change. Each call
on the prefix x[:, :l] recomputes only the positions not yet stored (usually the one token appended since the last
call; several when prompt tokens are copied in) and reads the rest:
    recompute = {p < l : p not stored},   stored after the call = {p < l}.
A length-L generation then runs L forward tokens instead of L(L+1)/2, with the same tokens as the uncached sampler.
The Autoregressive sampler uses it by default with a DiffusionLM (`kv_cache=False` turns it off).
"""

from __future__ import annotations

from torch import Tensor

from dlm.cache.base import CachePolicy
from dlm.registry import CACHES, ConfigError


@CACHES.register("append")
class AppendCache(CachePolicy):
    def check(self, process) -> None:
        if process is not None:
            raise ConfigError("cache 'append' is the autoregressive KV cache; diffusion models take dkv_decode, "
                              "dkv_greedy, prefix or dual")

    def select(self, xt: Tensor) -> Tensor:
        return ~self.store.valid[:, :xt.shape[1]]

    def commit(self, xt: Tensor, recomputed: Tensor) -> None:
        self.store.valid[:, :xt.shape[1]] = True
