"""Data: sources -> documents -> tokenizer -> packed (N, L) token rows -> deterministic rank-sharded batches.

Typical use::

    tokenizer = tokenizer_from_config(cfg.data)
    train_ids, train_mask, val_ids, val_mask = build_splits(cfg.data, tokenizer)
    train = TokenBatches(train_ids, train_mask, batch_size, shuffle=True, seed=seed, rank=rank, world_size=world)
"""

from dlm.config import DataConfig
from dlm.data.batches import TokenBatches
from dlm.data.packing import Ragged, pad, wrap
from dlm.data.sources import LocalSource, load_documents
from dlm.data.splits import build_splits, encode, split_documents, tokenizer_from_config
from dlm.data.text_files import read_documents
from dlm.data.tokenizer import build_tokenizer, special_tokens

__all__ = [
    "DataConfig",
    "LocalSource",
    "Ragged",
    "TokenBatches",
    "build_splits",
    "build_tokenizer",
    "encode",
    "load_documents",
    "pad",
    "read_documents",
    "special_tokens",
    "split_documents",
    "tokenizer_from_config",
    "wrap",
]
