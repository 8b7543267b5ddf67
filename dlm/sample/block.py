"""Block diffusion sampling (BD3LM, arXiv 2503.09573 §3.3, Algorithm 2; docs/block_diffusion.md).

Blocks of `block_size` tokens are decoded left to right. Block k runs a masked sampler (`inner`: ancestral by
default, or confidence, ...) on the window x[:, :(k+1) b]: its queries are the block's tokens, attending to the clean
prefix and to the block itself (the model's block-causal pattern). With the KV cache (dlm/cache/block.py, the
default with a DiffusionLM) the prefix is read from the cache; once the block has no mask left, it is run once more,
clean, and only then are its keys/values stored, so every stored entry equals what the training forward's clean
stream computes and cached sampling draws the same tokens as recomputing the whole prefix at every step.

Inside a block the inner sampler sets the budget (its `blocks` plan): a fixed-step sampler (ancestral) spends `steps`
per block; an adaptive one (confidence with a threshold or a factor, entropy_bounded, first_hitting) runs the block
until it has no mask left, each row committing its own number of tokens per step (at least one while it has a mask),
and a step where no row has anything left calls no denoiser: NFE is what the rule needs (count it with NFECounter).
A batched call still computes the rows that finished the block (their tokens do not change): the cache serves whole
batches, not subsets of rows.

Options: the block sampler's own (below) and its inner sampler's, in the syntax of options.py:
"block:inner=confidence,threshold=0.9,eos_id=0", or the inner sampler named directly ("confidence:threshold=0.9")
through `objective.sampler`. Options the block sampler does not own go to the inner sampler (inner_options).

Variable length: with eos_id >= 0 a row stops at the first EOS it generates (prompt tokens do not count); its later
positions are padding (pad_id, default eos_id), and decoding ends when every row has stopped. With tail_entropy > 0 a
row also stops, after a block, when its last tail_length tokens (prompt included) have a token histogram of entropy
H = -sum_v (c_v / T) log(c_v / T) < tail_entropy nats, and that degenerate tail becomes padding: the reference's
`_check_stop_conds` (H < 4 over the last 256 tokens), per row instead of pooled over the batch. Rows stop
independently, and a row's draws depend only on its own generator (pass one per row for batch invariance).

Beyond the training length: with window = W > 0 (a multiple of b, e.g. the model's max_len) block k sees only the
last W tokens up to its end, x[:, max(0, (k+1) b - W):(k+1) b], at positions 0 ... W - 1 (rotary positions are
relative to the window, as in the reference). That is an approximation past W (the model never saw a text start
mid-way), exact within it: a window as long as the text changes nothing. When the window moves, every position's
keys/values change, so the cache forgets them and stores the new window's clean prefix with one clean call over it
(W - b tokens) before the block's steps; cached sampling then still equals recomputing the window at every step.
(The reference instead keeps the old pre-rotary keys/values, computed with the context they had, and rotates them
at their new positions: cheaper per block, but not what a forward over the window computes.) Past W a block
therefore costs one (W - b)-token call plus its steps on b tokens: linear in the length, with about W / b more
tokens per block than inside the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from dlm.cache.base import CachePolicy
from dlm.cache.block import BlockCache
from dlm.process.base import Capability
from dlm.registry import SAMPLERS, ConfigError
from dlm.sample.base import Sampler, get_sampler
from dlm.sample.context import SamplingContext
from dlm.sample.semi_ar import DecodeBlock
from dlm.validation import check_finite


@SAMPLERS.register("block")
@dataclass
class BlockSampler(Sampler):
    """block_size: the model's block size (required); inner: the registered masked sampler run inside each block,
    optionally with its options ("confidence:threshold=0.9"); inner_options: more of its options (what get_sampler
    gets that the block sampler does not own); its temperature / top-k / top-p are this sampler's; steps
    (generate's) are per block for a fixed-step inner sampler; kv_cache: the exact block cache by default;
    eos_id / pad_id: variable-length stopping (-1: off / eos_id); tail_entropy > 0: a row also stops when the
    entropy (nats) of its last tail_length tokens falls below it, and that tail becomes padding; window > 0 (a
    multiple of block_size): block k sees only the last `window` tokens up to its end (module docstring)."""

    inner: str = "ancestral"
    inner_options: dict = field(default_factory=dict)
    kv_cache: bool = True
    eos_id: int = -1
    pad_id: int = -1
    tail_entropy: float = 0.0
    tail_length: int = 256
    window: int = 0

    needs = frozenset({Capability.ABSORBING})
    forwards_options_to: ClassVar[str] = "inner_options"  # options.py: options it does not own go there

    def __post_init__(self):
        super().__post_init__()
        if self.block_size < 1:
            raise ConfigError("the block sampler needs block_size >= 1: the model's objective.block_size")
        if self.window % self.block_size or self.window < 0:
            raise ConfigError(f"the block sampler's window must be a multiple of block_size={self.block_size} "
                              f"(0: no sliding window), got {self.window}")
        check_finite("tail_entropy", self.tail_entropy)
        if self.tail_entropy > 0 and (self.tail_length < 1 or self.pad < 0):
            raise ConfigError("tail_entropy > 0 needs tail_length >= 1 and a padding id (pad_id or eos_id) for the "
                              f"tail it cuts, got tail_length={self.tail_length}, pad_id={self.pad_id}")
        if self.inner.partition(":")[0] == "block":
            raise ConfigError("the block sampler's inner sampler must be a masked sampler, not 'block'")
        options = {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "nucleus": self.nucleus,
                   "eps": self.eps, "final": self.final, "chunk_positions": self.chunk_positions}
        self.inner_sampler = get_sampler(self.inner, **options, **self.inner_options)
        if self.inner_sampler.evaluates_row_subsets and self.kv_cache:
            raise ConfigError(f"sampler '{self.inner}' evaluates the denoiser on subsets of rows, which the block KV "
                              "cache cannot serve; use 'ancestral' or 'confidence', or kv_cache=False")

    def check(self, process) -> None:
        super().check(process)
        self.inner_sampler.check(process)

    def token_steps(self, new: int) -> int:
        """One reverse step per token: `steps` are per block here, so the block size whatever the length."""
        return self.block_size

    def default_cache(self, denoiser) -> BlockCache | None:
        return BlockCache() if self.kv_cache and getattr(denoiser, "supports_kv_cache", False) else None

    def blocks(self, editable: Tensor, steps: int) -> list[DecodeBlock]:
        """One DecodeBlock per block of the sequence, with the steps the inner sampler plans for it (`steps` for a
        fixed-step sampler, what the block's widest row can need for an adaptive one; a progress bar's plan)."""
        L, b = editable.shape[1], self.block_size
        if L % b:
            raise ConfigError(f"the generated length {L} must be a multiple of the model's block_size {b}")
        columns = torch.arange(L, device=editable.device)
        return [self.inner_sampler.blocks(editable & (columns // b == k), steps)[0] for k in range(L // b)]

    def decode(self, ctx: SamplingContext, x: Tensor, fixed: Tensor, steps: int,
               on_step: Callable[[int, float, Tensor], None] | None = None) -> Tensor:
        if isinstance(ctx.cache, CachePolicy) and not isinstance(ctx.cache, BlockCache):
            raise ConfigError(f"the block sampler keeps its own exact cache ('block'); cache "
                              f"{type(ctx.cache).__name__} would approximate it: drop the cache option")
        b, inner = self.block_size, self.inner_sampler
        cut = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)  # (B,) padding from here
        index = 0
        plan = self.blocks(~fixed, steps)
        for k, block in enumerate(plan):
            start, end, low = k * b, (k + 1) * b, self.window_start(k)
            stopped = cut < x.shape[1]
            x[:, start:end] = torch.where(stopped[:, None] & ~fixed[:, start:end], self.pad, x[:, start:end])
            if k and low != self.window_start(k - 1) and isinstance(ctx.cache, BlockCache):
                ctx.cache.forget()  # the window moved: every position's keys/values change
                if start > low:
                    ctx.predict(x[:, low:start], None)  # the clean prefix of the new window, stored
            ctx.editable = block.editable[:, low:end] & ~stopped[:, None]
            window = x[:, low:end]
            if bool(ctx.editable.any()):
                grid = inner.grid(block.steps)
                for i in range(grid.steps):
                    window = inner.step(ctx, window, grid, i).xs
                    index += 1
                    if on_step is not None:
                        on_step(index, grid.s(i), torch.cat([x[:, :low], window, x[:, end:]], dim=1))
                window = inner.finish(ctx, window, grid)
            x = torch.cat([x[:, :low], window, x[:, end:]], dim=1)
            index += 1
            if on_step is not None:
                on_step(index, 0.0, x)
            cut = torch.minimum(cut, self.stops(x[:, :end], fixed[:, :end], start))
            if bool((cut < x.shape[1]).all()) or k == len(plan) - 1:
                break
            if ctx.cache is not None and self.window_start(k + 1) == low:
                ctx.predict(window, None)  # the finished block, clean: now its keys/values are stored
        columns = torch.arange(x.shape[1], device=x.device)
        return torch.where((columns >= cut[:, None]) & ~fixed, self.pad, x)

    def window_start(self, k: int) -> int:
        """The first column block k sees: 0, or with a sliding window the start of the last `window` tokens."""
        return max(0, (k + 1) * self.block_size - self.window) if self.window else 0

    def stops(self, x: Tensor, fixed: Tensor, start: int) -> Tensor:
        """(B,) where each row's padding starts after the block that starts at `start` (x.shape[1] for rows that go
        on; x: the tokens so far): after its first generated EOS in the block, and, when the entropy of its last
        tail_length tokens is below tail_entropy, at the start of that tail."""
        length, never = x.shape[1], torch.iinfo(torch.long).max
        cut = torch.full((x.shape[0],), never, dtype=torch.long, device=x.device)
        if self.eos_id >= 0:
            columns = torch.arange(start + 1, length + 1, device=x.device)
            eos = (x[:, start:] == self.eos_id) & ~fixed[:, start:]
            cut = torch.where(eos, columns, never).min(-1).values
        if self.tail_entropy > 0 and length > self.tail_length:
            low = tail_entropy(x[:, -self.tail_length:]) < self.tail_entropy
            cut = torch.where(low, cut.clamp_max(length - self.tail_length), cut)
        return cut

    @property
    def pad(self) -> int:
        return self.eos_id if self.pad_id < 0 else self.pad_id


def tail_entropy(tail: Tensor) -> Tensor:
    """(B,) the entropy (nats) of each row's token counts over tail (B, T): H = -sum_v (c_v / T) log(c_v / T), the
    BD3LM reference's `_compute_entropy` (docs/block_diffusion.md), per row instead of pooled over the batch."""
    counts = torch.zeros(tail.shape[0], int(tail.max()) + 1, dtype=torch.float64, device=tail.device)
    counts.scatter_add_(1, tail, torch.ones_like(tail, dtype=torch.float64))
    p = counts / tail.shape[1]
    return -torch.special.xlogy(p, p).sum(-1)


def block_sampler(objective: Any, name: str | None = None, **options: Any) -> BlockSampler:
    """The block sampler of a block-diffusion objective (objectives/block_diffusion.py): `name` is the sampler run
    inside each block with its options ("confidence:threshold=0.9"), or "block" itself with its options and the
    inner sampler's ("block:inner=confidence,threshold=0.9"), or None (ancestral inside); keyword options the block
    sampler does not own go to the inner sampler; block_size is the model's (a different one is a one-line
    ConfigError)."""
    name = name or "block"
    if name.partition(":")[0] != "block":
        options["inner"], name = name, "block"
    size = options.pop("block_size", 0) or objective.block_size
    sampler = get_sampler(name, block_size=size, **options)
    if sampler.block_size != objective.block_size:
        raise ConfigError(f"this model decodes in blocks of {objective.block_size} (objective.block_size), got "
                          f"block_size={sampler.block_size}")
    sampler.check(objective.process)
    return sampler
