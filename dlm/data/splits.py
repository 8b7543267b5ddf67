"""Train / validation token arrays from a DataConfig: load documents, tokenize in batches, pack."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from dlm.config import DataConfig
from dlm.data.batches import TokenBatches
from dlm.data.cache import Splits, cached_splits
from dlm.data.packing import Packing, Ragged, pad, wrap
from dlm.data.prepared import PreparedCorpus, prepared_folder, prepared_sources
from dlm.data.rows import TensorRows, TokenSource
from dlm.data.sources import load_documents
from dlm.data.streaming import StreamingBatches, stream_target
from dlm.data.text_datasets import text_dataset
from dlm.data.tokenizer import build_tokenizer, special_tokens
from dlm.registry import SOURCES, ConfigError
from dlm.types import SpecialTokens

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

MODES = ("wrap", "pad")
ENCODE_BATCH = 1000  # documents per tokenizer call


def split_documents(cfg: DataConfig) -> tuple[list[str], list[str]]:
    """(train, validation) documents: validation from cfg.val_source, else the last val_fraction of cfg.source."""
    docs = load_documents(cfg.source, "train", cfg)
    if cfg.val_source:
        return docs, load_documents(cfg.val_source, "valid", cfg)
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={cfg.val_fraction} must be in (0, 1) when data.val_source is empty")
    if len(docs) < 2:
        raise ConfigError(
            f"dataset '{cfg.source}' has a single document, so none can be held out for validation; "
            "set data.doc_split=blank_line or line, or data.val_source"
        )
    held_out = min(len(docs) - 1, max(1, round(len(docs) * cfg.val_fraction)))
    return docs[:-held_out], docs[-held_out:]


def row_source(source: str):
    """The registered source named by the prefix of `source` ("vq" of "vq:<codec>:mnist") when it builds token rows
    itself (has build_splits(cfg) and tokenizer(cfg): the image sources of dlm/image/source.py), else None."""
    prefix, sep, _ = source.partition(":")
    factory = SOURCES.get(prefix) if sep else None
    return factory if hasattr(factory, "build_splits") else None


def tokenizer_from_config(cfg: DataConfig) -> PreTrainedTokenizerFast:
    """build_tokenizer(cfg.tokenizer); 'char' and 'bpe:<N>' are built from the training documents; a
    ``prepared:DIR`` source brings its own (which must be the one cfg.tokenizer names)."""
    folder = prepared_folder(cfg.source)
    if folder is not None:
        corpus = PreparedCorpus(folder, verify=False)
        if corpus.manifest["tokenizer"] != cfg.tokenizer:
            raise ConfigError(f"data.tokenizer={cfg.tokenizer} but {folder} was prepared with tokenizer "
                              f"{corpus.manifest['tokenizer']}; set data.tokenizer={corpus.manifest['tokenizer']}")
        return corpus.tokenizer()
    if (rows := row_source(cfg.source)) is not None:
        return rows.tokenizer(cfg)
    needs_texts = cfg.tokenizer == "char" or cfg.tokenizer.startswith("bpe:")
    if needs_texts and stream_target(cfg.source) is not None:
        raise ConfigError(f"data.tokenizer={cfg.tokenizer} is built from the training texts, which a stream does not "
                          "hold; use gpt2, byte or a HF tokenizer")
    return build_tokenizer(cfg.tokenizer, split_documents(cfg)[0] if needs_texts else None)


def encode(tokenizer: PreTrainedTokenizerFast, docs: list[str]) -> Ragged:
    """Token ids of every document, without special tokens, batch-encoded (the tokenizers library runs in parallel)."""
    parts = []
    for start in range(0, len(docs), ENCODE_BATCH):
        batch = tokenizer(
            docs[start : start + ENCODE_BATCH],
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        parts.append(Ragged.from_lists(batch["input_ids"]))
    return Ragged.concat(parts)


def build_splits(cfg: DataConfig, tokenizer: PreTrainedTokenizerFast) -> Splits:
    """(train_ids (N, L), train_mask (N, L) | None, val_ids (M, L), val_mask (M, L) | None), L = cfg.seq_len.

    Masks are None in wrap mode (every position is a token) and bool in pad mode (False on pads). With
    cfg.cache_dir set the arrays are cached on disk. Raises ConfigError when either split packs to no rows.
    """
    if cfg.mode not in MODES:
        raise ConfigError(f"unknown data.mode '{cfg.mode}'; choose one of: {', '.join(MODES)}")
    if (rows := row_source(cfg.source)) is not None:
        return rows.build_splits(cfg)
    return cached_splits(cfg, tokenizer, lambda: _build(cfg, tokenizer))


def build_batches(
    cfg: DataConfig, tokenizer: PreTrainedTokenizerFast, batch_size: int, *, seed: int = 0, rank: int = 0,
    world_size: int = 1,
) -> tuple[TokenBatches | StreamingBatches, TokenBatches]:
    """(training batches: shuffled, endless, resumable; validation batches: one in-order pass) of cfg.

    In-memory sources are packed by build_splits; ``prepared:DIR`` sources are read from their memory-mapped
    shards (dlm/data/prepared.py); ``stream:`` sources are tokenized on the fly (dlm/data/streaming.py), validated
    on data.val_source or the hf: dataset's valid split. Every rank walks the same global batches, keeping rows
    [rank::world_size].
    """
    target = stream_target(cfg.source)
    if target is None:
        train, val = token_sources(cfg, tokenizer)
        train_batches = TokenBatches(train, batch_size=batch_size, shuffle=True, seed=seed, rank=rank,
                                     world_size=world_size)
    else:
        train_batches = StreamingBatches(lambda: text_dataset(target, "train", cfg.text_field, cfg.doc_split,
                                                              streaming=True),
                                         tokenizer, _packing(cfg, tokenizer), batch_size, seed=seed, rank=rank,
                                         world_size=world_size)
        val = _stream_validation(cfg, target, tokenizer)
    return train_batches, TokenBatches(val, batch_size=batch_size, shuffle=False, rank=rank, world_size=world_size)


def _stream_validation(cfg: DataConfig, target: str, tokenizer: PreTrainedTokenizerFast) -> TokenSource:
    """Validation rows of a stream: data.val_source, else the valid split of the hf: dataset, packed in memory."""
    val_source = cfg.val_source or (target if target.startswith("hf:") else "")
    if not val_source:
        raise ConfigError(f"data.source={cfg.source} streams local files, which have no validation split; "
                          "set data.val_source (a file or source to validate on)")
    return _packed_rows(cfg, tokenizer, val_source)


def _packed_rows(cfg: DataConfig, tokenizer: PreTrainedTokenizerFast, source: str) -> TensorRows:
    """The valid split of an ordinary source (a named corpus, file or hf: dataset), packed in memory."""
    return TensorRows(*_pack(encode(tokenizer, load_documents(source, "valid", cfg)), cfg, tokenizer, source))


def token_sources(cfg: DataConfig, tokenizer: PreTrainedTokenizerFast) -> tuple[TokenSource, TokenSource]:
    """(train, validation) TokenSources of cfg: prepared shards or in-memory packed rows."""
    if cfg.mode not in MODES:
        raise ConfigError(f"unknown data.mode '{cfg.mode}'; choose one of: {', '.join(MODES)}")
    if prepared_folder(cfg.source) is None:
        train_ids, train_mask, val_ids, val_mask = build_splits(cfg, tokenizer)
        return TensorRows(train_ids, train_mask), TensorRows(val_ids, val_mask)
    train, val = prepared_sources(cfg, _packing(cfg, tokenizer))
    return train, val if val is not None else _packed_rows(cfg, tokenizer, cfg.val_source)


def _packing(cfg: DataConfig, tokenizer: PreTrainedTokenizerFast) -> Packing:
    specials = _check_specials(cfg, tokenizer)
    return Packing(cfg.seq_len, cfg.mode, cfg.add_bos_eos, specials.bos, specials.eos, specials.pad)


def _build(cfg: DataConfig, tokenizer: PreTrainedTokenizerFast) -> Splits:
    train_docs, val_docs = split_documents(cfg)
    train = _pack(encode(tokenizer, train_docs), cfg, tokenizer, cfg.source)
    val = _pack(encode(tokenizer, val_docs), cfg, tokenizer, cfg.val_source or f"{cfg.source} (held-out validation)")
    return (*train, *val)


def _pack(
    docs: Ragged, cfg: DataConfig, tokenizer: PreTrainedTokenizerFast, name: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    specials = _check_specials(cfg, tokenizer)
    if cfg.mode == "wrap":
        ids, mask = wrap(docs, cfg.seq_len, specials.bos, specials.eos, cfg.add_bos_eos), None
    else:
        ids, mask = pad(docs, cfg.seq_len, specials.bos, specials.eos, specials.pad, cfg.add_bos_eos)
    if len(ids) == 0:
        raise ConfigError(
            f"dataset {name} produced no blocks of length {cfg.seq_len}: it has only {len(docs.tokens)} tokens "
            f"in {len(docs.lengths)} documents; use more data, a larger data.val_fraction or a shorter data.seq_len"
        )
    return ids, mask


def _check_specials(cfg: DataConfig, tokenizer: PreTrainedTokenizerFast) -> SpecialTokens:
    specials = special_tokens(tokenizer)
    if specials.eos is None or (cfg.mode == "pad" and specials.pad is None):
        raise ConfigError(f"tokenizer '{cfg.tokenizer}' lacks an eos or pad token needed by data.mode={cfg.mode}")
    return specials
