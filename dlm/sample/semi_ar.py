"""Semi-autoregressive block decoding around any masked sampler (LLaDA, arXiv 2502.09992, generate.py; ALGORITHMS §7.1).

The editable positions are cut into consecutive blocks of `block_size` columns, left to right. Block k runs a full
reverse trajectory (its own time grid from 1 to eps, then noise removal) with every other position frozen: earlier
blocks are finished, later blocks stay masked. `steps` is split evenly over the blocks, so it must be a multiple of
their number, as in LLaDA.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from dlm.registry import ConfigError


@dataclass(frozen=True)
class Block:
    """editable: bool (B, L), the positions this block may change; steps: reverse steps spent on it."""

    editable: Tensor
    steps: int


def block_plan(editable: Tensor, block_size: int, steps: int) -> list[Block]:
    """One Block over everything when block_size == 0; else blocks of block_size columns, starting at the first
    column any row may edit, skipping blocks no row may edit. editable: bool (B, L)."""
    if block_size <= 0:
        return [Block(editable, steps)]
    columns = editable.any(0).nonzero().flatten()
    if len(columns) == 0:
        return []
    start = int(columns[0])
    spans = [(a, a + block_size) for a in range(start, editable.shape[1], block_size)]
    spans = [(a, b) for a, b in spans if bool(editable[:, a:b].any())]
    if steps % len(spans):
        raise ConfigError(f"steps={steps} must be a multiple of the number of blocks ({len(spans)} blocks of "
                          f"{block_size} tokens)")
    blocks = []
    for a, b in spans:
        region = editable.clone()
        region[:, :a] = False
        region[:, b:] = False
        blocks.append(Block(region, steps // len(spans)))
    return blocks
