"""Deterministic, resumable, rank-sharded batches over a TokenSource (no DataLoader, no workers)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from dlm.data.rows import Order, TensorRows, TokenSource
from dlm.registry import ConfigError


class TokenBatches:
    """Batches of the rows of `source`: a TokenSource, or an (N, L) id tensor with `attention_mask` (N, L) or None
    (= every position is a token).

    Every rank walks the same global batches of `batch_size` rows and keeps its slice ``[rank::world_size]``.
    shuffle=True (training): epoch e visits the rows in the order source.order(seed + e) (randperm for rows in
    memory, an O(1)-memory Permutation for memory-mapped corpora of any size), drops the last partial batch and iterates
    forever; iteration continues from the current position, which state_dict() / load_state_dict() save and restore.
    shuffle=False (validation): every iteration is one in-order pass, last partial batch included. When that
    batch does not split evenly over ranks it is topped up with copies of row 0 whose mask is all False, so every
    rank gets the same number of rows and of batches.
    Yields {"input_ids": LongTensor (b, L), "attention_mask": BoolTensor (b, L)}, b = batch_size // world_size.
    """

    def __init__(
        self,
        source: TokenSource | torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.source = source if isinstance(source, TokenSource) else TensorRows(source, attention_mask)
        if batch_size < 1 or batch_size % world_size != 0:
            raise ConfigError(f"train.batch_size={batch_size} must be a positive multiple of world size {world_size}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world size {world_size}")
        if shuffle and len(self.source) < batch_size:
            raise ConfigError(
                f"the dataset has {len(self.source)} rows, fewer than train.batch_size={batch_size}; "
                "use more data, a smaller batch or a shorter data.seq_len"
            )
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.padded = self.source.padded
        self.epoch = 0
        self.index = 0  # global batches already yielded in this epoch

    def __len__(self) -> int:
        """Batches per epoch (training) or per pass (validation)."""
        rows = len(self.source)
        return rows // self.batch_size if self.shuffle else math.ceil(rows / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if not self.shuffle:
            for index in range(len(self)):
                yield self._batch(None, index)
            return
        while True:
            order = self.source.order(self.seed + self.epoch)
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

    def _batch(self, order: Order | None, index: int) -> dict[str, torch.Tensor]:
        """This rank's slice of global batch `index` of `order` (None: in order): (b, L) ids and mask."""
        positions = np.arange(index * self.batch_size, min((index + 1) * self.batch_size, len(self.source)))
        rows = order(positions) if order is not None else positions
        real = np.ones(len(rows), dtype=bool)
        short = -len(rows) % self.world_size
        if short:  # validation tail: pad with masked-out copies of row 0 so all ranks get equal rows
            rows = np.concatenate([rows, np.zeros(short, dtype=np.int64)])
            real = np.concatenate([real, np.zeros(short, dtype=bool)])
        rows, real = rows[self.rank :: self.world_size], real[self.rank :: self.world_size]
        ids, mask = self.source.rows(rows)
        return {"input_ids": ids, "attention_mask": mask & torch.from_numpy(real)[:, None]}
