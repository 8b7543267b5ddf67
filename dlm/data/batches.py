"""Deterministic, resumable, rank-sharded batches over packed token rows (no DataLoader, no workers)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from dlm.registry import ConfigError


class TokenBatches:
    """Batches of rows of `ids` (N, L) with `attention_mask` (N, L) or None (= every position is a token).

    Every rank walks the same global batches of `batch_size` rows and keeps its slice ``[rank::world_size]``.
    shuffle=True (training): epoch e visits the rows in ``randperm(N)`` drawn from a generator seeded with
    seed + e, drops the last partial batch and iterates forever; iteration continues from the current position,
    which state_dict() / load_state_dict() save and restore.
    shuffle=False (validation): every iteration is one in-order pass, last partial batch included. When that
    batch does not split evenly over ranks it is topped up with copies of row 0 whose mask is all False, so every
    rank gets the same number of rows and of batches.
    Yields {"input_ids": LongTensor (b, L), "attention_mask": BoolTensor (b, L)}, b = batch_size // world_size.
    """

    def __init__(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if ids.dim() != 2 or len(ids) == 0:
            raise ConfigError(f"TokenBatches needs a non-empty (N, L) tensor of ids, got shape {tuple(ids.shape)}")
        if attention_mask is not None and attention_mask.shape != ids.shape:
            raise ConfigError(f"attention_mask shape {tuple(attention_mask.shape)} != ids shape {tuple(ids.shape)}")
        if batch_size < 1 or batch_size % world_size != 0:
            raise ConfigError(f"train.batch_size={batch_size} must be a positive multiple of world size {world_size}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world size {world_size}")
        if shuffle and len(ids) < batch_size:
            raise ConfigError(
                f"the dataset has {len(ids)} rows, fewer than train.batch_size={batch_size}; "
                "use more data, a smaller batch or a shorter data.seq_len"
            )
        self.ids = ids.long()
        self.attention_mask = attention_mask.bool() if attention_mask is not None else None
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.index = 0  # global batches already yielded in this epoch

    def __len__(self) -> int:
        """Batches per epoch (training) or per pass (validation)."""
        rows = len(self.ids)
        return rows // self.batch_size if self.shuffle else math.ceil(rows / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if not self.shuffle:
            order = torch.arange(len(self.ids))
            for index in range(len(self)):
                yield self._batch(order, index)
            return
        while True:
            order = torch.randperm(len(self.ids), generator=torch.Generator().manual_seed(self.seed + self.epoch))
            while self.index < len(self):
                self.index += 1
                yield self._batch(order, self.index - 1)
            self.epoch, self.index = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        """The position after the last batch yielded: {"epoch", "index"} (index = batches done in that epoch)."""
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue at `state`; the next iteration yields the batch after the one that state was saved after."""
        self.epoch, self.index = int(state["epoch"]), int(state["index"])

    def _batch(self, order: torch.Tensor, index: int) -> dict[str, torch.Tensor]:
        """This rank's slice of global batch `index` of `order`: (b, L) ids and mask."""
        rows = order[index * self.batch_size : (index + 1) * self.batch_size]
        real = torch.ones(len(rows), dtype=torch.bool)
        short = -len(rows) % self.world_size
        if short:  # validation tail: pad with masked-out copies of row 0 so all ranks get equal rows
            rows = torch.cat([rows, rows.new_zeros(short)])
            real = torch.cat([real, real.new_zeros(short)])
        rows, real = rows[self.rank :: self.world_size], real[self.rank :: self.world_size]
        ids = self.ids[rows]
        mask = self.attention_mask[rows] if self.attention_mask is not None else torch.ones_like(ids, dtype=torch.bool)
        return {"input_ids": ids, "attention_mask": mask & real[:, None]}
