"""Block diffusion sampling (BD3LM, arXiv 2503.09573 §3.3, Algorithm 2; docs/block_diffusion.md).

Blocks of `block_size` tokens are decoded left to right. Block k runs a masked sampler (`inner`: ancestral by
default, or confidence, ...) on the window x[:, :(k+1) b]: its queries are the block's tokens, attending to the clean
prefix and to the block itself (the model's block-causal pattern). With the KV cache (dlm/cache/block.py, the
default with a DiffusionLM) the prefix is read from the cache; once the block has no mask left, it is run once more,
clean, and only then are its keys/values stored, so every stored entry equals what the training forward's clean
stream computes and cached sampling draws the same tokens as recomputing the whole prefix at every step.

Variable length: with eos_id >= 0 a row stops at the first EOS it generates (prompt tokens do not count); its later
positions are padding (pad_id, default eos_id), and decoding ends when every row has stopped. Rows stop
independently, and a row's draws depend only on its own generator (pass one per row for batch invariance).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dlm.cache.base import CachePolicy
from dlm.cache.block import BlockCache
from dlm.process.base import Capability
from dlm.registry import SAMPLERS, ConfigError
from dlm.sample.base import Sampler, get_sampler
from dlm.sample.context import SamplingContext
from dlm.sample.semi_ar import DecodeBlock


@SAMPLERS.register("block")
@dataclass
class BlockSampler(Sampler):
    """block_size: the model's block size (required); inner: the registered masked sampler run inside each block
    (its temperature / top-k / top-p are this sampler's); steps (generate's) are per block; kv_cache: the exact
    block cache by default; eos_id / pad_id: variable-length stopping (-1: off / eos_id)."""

    inner: str = "ancestral"
    kv_cache: bool = True
    eos_id: int = -1
    pad_id: int = -1

    needs = frozenset({Capability.ABSORBING})

    def __post_init__(self):
        super().__post_init__()
        if self.block_size < 1:
            raise ConfigError("the block sampler needs block_size >= 1: the model's objective.block_size")
        if self.inner == "block":
            raise ConfigError("the block sampler's inner sampler must be a masked sampler, not 'block'")
        options = {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "eps": self.eps,
                   "final": self.final, "chunk_positions": self.chunk_positions}
        self.inner_sampler = get_sampler(self.inner, **options)
        if self.inner_sampler.evaluates_row_subsets and self.kv_cache:
            raise ConfigError(f"sampler '{self.inner}' evaluates the denoiser on subsets of rows, which the block KV "
                              "cache cannot serve; use 'ancestral' or 'confidence', or kv_cache=False")

    def check(self, process) -> None:
        super().check(process)
        self.inner_sampler.check(process)

    def default_cache(self, denoiser) -> BlockCache | None:
        return BlockCache() if self.kv_cache and getattr(denoiser, "supports_kv_cache", False) else None

    def blocks(self, editable: Tensor, steps: int) -> list[DecodeBlock]:
        """One DecodeBlock per block of the sequence (the steps it may spend; a progress bar's plan)."""
        L, b = editable.shape[1], self.block_size
        if L % b:
            raise ConfigError(f"the generated length {L} must be a multiple of the model's block_size {b}")
        columns = torch.arange(L, device=editable.device)
        return [DecodeBlock(editable & (columns // b == k), steps) for k in range(L // b)]

    def decode(self, ctx: SamplingContext, x: Tensor, fixed: Tensor, steps: int,
               on_step: Callable[[int, float, Tensor], None] | None = None) -> Tensor:
        if isinstance(ctx.cache, CachePolicy) and not isinstance(ctx.cache, BlockCache):
            raise ConfigError(f"the block sampler keeps its own exact cache ('block'); cache "
                              f"{type(ctx.cache).__name__} would approximate it: drop the cache option")
        b, inner = self.block_size, self.inner_sampler
        grid = inner.grid(steps)
        stopped = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        index = 0
        plan = self.blocks(~fixed, steps)
        for k, block in enumerate(plan):
            start, end = k * b, (k + 1) * b
            x[:, start:end] = torch.where(stopped[:, None] & ~fixed[:, start:end], self.pad, x[:, start:end])
            ctx.editable = block.editable[:, :end] & ~stopped[:, None]
            window = x[:, :end]
            if bool(ctx.editable.any()):
                for i in range(grid.steps):
                    window = inner.step(ctx, window, grid, i).xs
                    index += 1
                    if on_step is not None:
                        on_step(index, grid.s(i), torch.cat([window, x[:, end:]], dim=1))
                window = inner.finish(ctx, window, grid)
            x = torch.cat([window, x[:, end:]], dim=1)
            index += 1
            if on_step is not None:
                on_step(index, 0.0, x)
            if self.eos_id >= 0:
                stopped |= ((window[:, start:] == self.eos_id) & ~fixed[:, start:end]).any(-1)
            if bool(stopped.all()) or k == len(plan) - 1:
                break
            if ctx.cache is not None:
                ctx.predict(window, None)  # the finished block, clean: now its keys/values are stored
        return self.padded(x, fixed)

    @property
    def pad(self) -> int:
        return self.eos_id if self.pad_id < 0 else self.pad_id

    def padded(self, x: Tensor, fixed: Tensor) -> Tensor:
        """x with every position after a row's first generated EOS set to pad (unchanged without eos_id)."""
        if self.eos_id < 0:
            return x
        columns = torch.arange(x.shape[1], device=x.device)
        eos = (x == self.eos_id) & ~fixed
        first = torch.where(eos, columns, x.shape[1]).min(-1).values[:, None]
        return torch.where(columns > first, self.pad, x)


def block_sampler(objective: Any, name: str | None = None, **options: Any) -> BlockSampler:
    """The block sampler of a block-diffusion objective (objectives/block_diffusion.py): `name` is the sampler run
    inside each block (or "block" itself, or None: ancestral); block_size is the model's (a different one is a
    one-line ConfigError)."""
    size = options.pop("block_size", 0) or objective.block_size
    if size != objective.block_size:
        raise ConfigError(f"this model decodes in blocks of {objective.block_size} (objective.block_size), got "
                          f"block_size={size}")
    known = {f.name for f in dataclasses.fields(BlockSampler)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"sampler 'block' has no option {unknown[0]!r}; options: {', '.join(sorted(known))}")
    if name not in (None, "block"):
        options["inner"] = name
    sampler = BlockSampler(block_size=size, **options)
    sampler.check(objective.process)
    return sampler
