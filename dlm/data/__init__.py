"""Data: sources -> documents -> tokenizer -> (L,) token rows (a TokenSource) -> deterministic rank-sharded batches.

Sources: in memory (named corpora, local files, hf:NAME[:CONFIG]; packed by build_splits), ``prepared:DIR``
(memory-mapped shards written by `dlm data prepare`, any size in constant memory) and ``stream:<hf:... | files>``
(a datasets IterableDataset tokenized on the fly). Typical use::

    tokenizer = tokenizer_from_config(cfg.data)
    train, val = build_batches(cfg.data, tokenizer, batch_size, seed=seed, rank=rank, world_size=world)
"""

from dlm.config import DataConfig
from dlm.data.batches import TokenBatches
from dlm.data.packing import Packing, Ragged, pad, wrap
from dlm.data.prepare import prepare
from dlm.data.prepared import PreparedCorpus, PreparedRows
from dlm.data.rows import TensorRows, TokenSource
from dlm.data.sft import SFTRows, read_sft_pairs, sft_rows
from dlm.data.sources import LocalSource, load_documents
from dlm.data.splits import build_batches, build_splits, encode, split_documents, tokenizer_from_config
from dlm.data.text_files import read_documents
from dlm.data.tokenizer import build_tokenizer, special_tokens

__all__ = [
    "DataConfig",
    "LocalSource",
    "Packing",
    "PreparedCorpus",
    "PreparedRows",
    "Ragged",
    "SFTRows",
    "TensorRows",
    "TokenBatches",
    "TokenSource",
    "build_batches",
    "build_splits",
    "build_tokenizer",
    "encode",
    "load_documents",
    "pad",
    "prepare",
    "read_documents",
    "read_sft_pairs",
    "sft_rows",
    "special_tokens",
    "split_documents",
    "tokenizer_from_config",
    "wrap",
]
