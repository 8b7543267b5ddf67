"""``data.source: stream:<hf:NAME[:CONFIG] | local files>``: wrap-mode batches from a `datasets` IterableDataset,
tokenized on the fly, for corpora that were not prepared. Memory holds one shuffle buffer and one batch.

Epoch e reads the corpus through ``IterableDataset.shuffle(seed + e, buffer_size)`` (a seeded, approximate
shuffle), concatenates every document's ids + EOS into one stream and cuts it into rows exactly as packing.wrap
does; consecutive rows form the global batches. Every rank reads the whole stream and keeps rows [rank::W] of
each global batch, so batches do not depend on the world size. Resume is exact: the position is (epoch, batches
done) and a resumed iterator replays the epoch up to it without building tensors (for corpora resumed often,
`dlm data prepare` them: prepared sources resume in O(1)).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dlm.data.packing import Packing
from dlm.data.text_datasets import TEXT
from dlm.registry import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

PREFIX = "stream:"
ENCODE_BATCH = 256  # documents per tokenizer call


def stream_target(source: str) -> str | None:
    """The hf:... or file part of a ``stream:`` source, else None."""
    return source[len(PREFIX):] if source.startswith(PREFIX) else None


class StreamingBatches:
    """Endless, resumable wrap-mode batches of an IterableDataset (one string column "text").

    dataset: () -> a fresh IterableDataset (called once per epoch). Yields {"input_ids": LongTensor (b, L),
    "attention_mask": BoolTensor (b, L) all True}, b = batch_size // world_size.
    """

    padded = False

    def __init__(
        self, dataset: Callable[[], Any], tokenizer: PreTrainedTokenizerFast, packing: Packing, batch_size: int, *,
        seed: int = 0, rank: int = 0, world_size: int = 1, shuffle_buffer: int = 10_000,
    ):
        if packing.mode != "wrap":
            raise ConfigError("stream: sources pack in wrap mode; set data.mode=wrap, or prepare the corpus")
        if packing.body < 1:
            raise ConfigError(f"data.seq_len={packing.seq_len} is too short for wrap mode; use at least 3")
        if batch_size < 1 or batch_size % world_size != 0:
            raise ConfigError(f"train.batch_size={batch_size} must be a positive multiple of world size {world_size}")
        self.dataset, self.tokenizer, self.packing = dataset, tokenizer, packing
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.shuffle_buffer = shuffle_buffer
        self.epoch = 0
        self.index = 0  # global batches already yielded in this epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            done = 0
            for done, rows in enumerate(self._epoch_rows(self.epoch), start=1):
                if done <= self.index:  # replaying up to the resumed position
                    continue
                self.index = done
                ids = torch.from_numpy(self.packing.frame(rows[self.rank :: self.world_size]))
                yield {"input_ids": ids, "attention_mask": torch.ones_like(ids, dtype=torch.bool)}
            if done == 0:
                raise ConfigError(f"the streamed corpus holds fewer than train.batch_size={self.batch_size} rows of "
                                  f"{self.packing.seq_len} tokens; use more data or a smaller batch")
            self.epoch, self.index = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])

    def _epoch_rows(self, epoch: int) -> Iterator[np.ndarray]:
        """Global batches of epoch `epoch` as (batch_size, body) int64 arrays of stream tokens."""
        dataset = self.dataset()
        if self.shuffle_buffer > 1:
            dataset = dataset.shuffle(seed=self.seed + epoch, buffer_size=self.shuffle_buffer)
        need = self.batch_size * self.packing.body
        pending: list[np.ndarray] = []
        held = 0
        for texts in _text_batches(dataset):
            ids = self.tokenizer(texts, add_special_tokens=False, return_attention_mask=False,
                                 return_token_type_ids=False, verbose=False)["input_ids"]
            for doc in ids:
                pending.append(np.asarray(doc + [self.packing.eos], dtype=np.int64))
                held += len(doc) + 1
            while held >= need:
                stream = np.concatenate(pending)
                yield stream[:need].reshape(self.batch_size, self.packing.body)
                pending, held = [stream[need:]], len(stream) - need



def _text_batches(dataset: Any) -> Iterator[list[str]]:
    """Non-blank documents of the stream in lists of ENCODE_BATCH."""
    batch: list[str] = []
    for row in dataset:
        text = row[TEXT]
        if isinstance(text, str) and text.strip():
            batch.append(text)
            if len(batch) == ENCODE_BATCH:
                yield batch
                batch = []
    if batch:
        yield batch
