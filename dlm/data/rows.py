"""TokenSource: N fixed-length token rows read by index. TokenBatches draws batches of them by (seed, epoch, index).

Implementations: TensorRows (packed rows in memory) and PreparedRows (dlm/data/prepared.py: rows cut on demand
from memory-mapped token shards, so memory stays constant whatever the corpus size).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import torch

from dlm.data.permutation import Permutation
from dlm.registry import ConfigError

Order = Callable[[np.ndarray], np.ndarray]  # positions in an epoch (b,) -> row indices (b,)


class TokenSource(ABC):
    """N rows of `seq_len` tokens; row i is the same on every call and every rank."""

    seq_len: int
    padded: bool  # True: rows carry pads (pad mode), the mask is False on them

    @abstractmethod
    def __len__(self) -> int:
        """The number of rows N."""

    @abstractmethod
    def rows(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows `index` (b,) int64: (ids LongTensor (b, seq_len), attention_mask BoolTensor (b, seq_len))."""

    def order(self, seed: int) -> Order:
        """The shuffled visiting order of one epoch: a Permutation of range(N) in O(1) memory."""
        return Permutation(len(self), seed)


class TensorRows(TokenSource):
    """Rows of an in-memory (N, L) id tensor with an optional (N, L) bool mask (None: every position is a token)."""

    def __init__(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        if ids.dim() != 2 or len(ids) == 0:
            raise ConfigError(f"TokenBatches needs a non-empty (N, L) tensor of ids, got shape {tuple(ids.shape)}")
        if attention_mask is not None and attention_mask.shape != ids.shape:
            raise ConfigError(f"attention_mask shape {tuple(attention_mask.shape)} != ids shape {tuple(ids.shape)}")
        self.ids = ids.long()
        self.attention_mask = attention_mask.bool() if attention_mask is not None else None
        self.seq_len, self.padded = ids.shape[1], attention_mask is not None

    def __len__(self) -> int:
        return len(self.ids)

    def order(self, seed: int) -> Order:
        """randperm(N) of a generator seeded with `seed`: the rows are in memory already, so is their order."""
        perm = torch.randperm(len(self.ids), generator=torch.Generator().manual_seed(seed)).numpy()
        return perm.__getitem__

    def rows(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.from_numpy(np.asarray(index, dtype=np.int64))
        ids = self.ids[index]
        mask = self.attention_mask[index] if self.attention_mask is not None else torch.ones_like(ids, dtype=torch.bool)
        return ids, mask
