"""Key/value caches for denoiser calls: a KVStore (storage) and policies deciding what each call recomputes.

Registered in CACHES: "dkv_decode", "dkv_greedy" (dKV-Cache, arXiv 2505.15781), "prefix", "dual" (Fast-dLLM,
arXiv 2505.22618) for masked models, "append" (the exact autoregressive KV cache, which the autoregressive
sampler uses by default) and "block" (the exact block-diffusion KV cache, which the block sampler uses by default).
Use `generate(model, process, sampler, ..., cache="dkv_decode")` or a configured instance, e.g.
`cache=DKVDecode(refresh_every=4)`; `dlm sample --cache dkv_decode` on the command line.

Exactness. "append" gives the uncached logits up to floating-point rounding. The diffusion policies approximate
(attention is bidirectional, so stored keys/values go stale); with refresh_every=1 every call is the plain forward
and the logits are bit-identical to the uncached ones.

Batch invariance (a row's tokens do not depend on the other rows of its batch or on padding around it). Holds for
generate with and without a cache when
  * padding is declared: rows of different lengths are right-padded and generate gets attention_mask (B, L), False
    at padding; padded positions are never edited, never attended and never recomputed, and the real positions
    keep their absolute positions 0..L_b-1;
  * randomness is per row: temperature 0 (greedy, no noise) or one torch.Generator per row (generate(...,
    generator=[g_0, ..., g_{B-1}])), so row b's noise depends only on g_b and on how much row b itself consumed;
  * with semi-AR blocks, rows have the same number of blocks (e.g. the same generation length, LLaDA's setting),
    since the steps are split evenly over the blocks of the batch.
Every cache decision (what to recompute, what to read, when to refresh) is made per row from that row's tokens and
the call count since the block began, which is the same for a row alone and in a batch while the row still has
work. What remains batch-dependent is floating-point: batched kernels (matmul blocking, the length of padded key
rows) may round a row's logits differently in the last bits. Decisions are taken in float64 from those logits, so
tokens can differ only where two candidates tie to within that rounding (~1e-7 relative in float32): possible, but
rare enough that tests/cache/test_batch_invariance.py sees identical tokens for every policy and sampler it tries.
"""

from dlm.cache.append import AppendCache
from dlm.cache.base import CachePolicy, gather_index, get_cache
from dlm.cache.block import BlockCache
from dlm.cache.dkv import DKVDecode, DKVGreedy
from dlm.cache.prefix import DualCache, PrefixCache
from dlm.cache.store import KVStore

__all__ = ["AppendCache", "BlockCache", "CachePolicy", "DKVDecode", "DKVGreedy", "DualCache", "KVStore", "PrefixCache",
           "gather_index", "get_cache"]
