"""Semi-autoregressive block decoding around any masked sampler (LLaDA, arXiv 2502.09992, generate.py).

Each row's editable positions are cut into consecutive blocks of `block_size` columns, left to right, counted from
that row's first editable column (so rows with prompts of different lengths each start at their own generation
region, and a row's blocks do not depend on its batch). Block k runs a full reverse trajectory (its own time grid
from 1 to eps, then noise removal) with every other position frozen: earlier blocks are finished, later blocks stay
masked. `steps` is split evenly over the blocks, so it must be a multiple of their number, as in LLaDA; the number
is the largest any row needs (a row with fewer blocks idles through the last ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.registry import ConfigError
from dlm.utils.deprecation import renamed


@dataclass(frozen=True)
class DecodeBlock:
    """editable: bool (B, L), the positions this block may change; steps: reverse steps spent on it."""

    editable: Tensor
    steps: int


def block_plan(editable: Tensor, block_size: int, steps: int) -> list[DecodeBlock]:
    """One DecodeBlock over everything when block_size == 0; else, per row, blocks of block_size columns starting at the
    row's first editable column, skipping blocks the row may not edit. editable: bool (B, L)."""
    if block_size <= 0:
        return [DecodeBlock(editable, steps)]
    columns = torch.arange(editable.shape[1], device=editable.device)
    first = torch.where(editable, columns, editable.shape[1]).min(-1).values[:, None]
    span = torch.where(editable, (columns - first) // block_size, -1)  # (B, L): block of each editable position
    # number the blocks each row may edit 0, 1, ... (skipping empty ones): rank of the span among the row's spans
    present = torch.zeros(editable.shape[0], editable.shape[1] + 1, dtype=torch.long, device=editable.device)
    present.scatter_add_(1, span.clamp_min(0), editable.long()).clamp_(max=1)
    rank = (present.cumsum(-1) - 1).gather(1, span.clamp_min(0))
    n_blocks = int(present.sum(-1).max()) if bool(editable.any()) else 0
    if n_blocks == 0:
        return []
    if steps % n_blocks:
        raise ConfigError(f"steps={steps} must be a multiple of the number of blocks ({n_blocks} blocks of "
                          f"{block_size} tokens)")
    return [DecodeBlock(editable & (rank == k), steps // n_blocks) for k in range(n_blocks)]


__getattr__ = renamed(__name__, {"Block": ("DecodeBlock", DecodeBlock)})
