"""Train / validation token arrays from a DataConfig: load documents, tokenize in batches, pack."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerFast

from dlm.config import DataConfig
from dlm.data.cache import Splits, cached_splits
from dlm.data.packing import Ragged, pad, wrap
from dlm.data.sources import load_documents
from dlm.data.tokenizer import build_tokenizer, special_tokens
from dlm.registry import ConfigError

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


def tokenizer_from_config(cfg: DataConfig) -> PreTrainedTokenizerFast:
    """build_tokenizer(cfg.tokenizer); 'char' and 'bpe:<N>' are built from the training documents."""
    needs_texts = cfg.tokenizer == "char" or cfg.tokenizer.startswith("bpe:")
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
    return cached_splits(cfg, tokenizer, lambda: _build(cfg, tokenizer))


def _build(cfg: DataConfig, tokenizer: PreTrainedTokenizerFast) -> Splits:
    train_docs, val_docs = split_documents(cfg)
    train = _pack(encode(tokenizer, train_docs), cfg, tokenizer, cfg.source)
    val = _pack(encode(tokenizer, val_docs), cfg, tokenizer, cfg.val_source or f"{cfg.source} (held-out validation)")
    return (*train, *val)


def _pack(
    docs: Ragged, cfg: DataConfig, tokenizer: PreTrainedTokenizerFast, name: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    specials = special_tokens(tokenizer)
    if specials.eos is None or (cfg.mode == "pad" and specials.pad is None):
        raise ConfigError(f"tokenizer '{cfg.tokenizer}' lacks an eos or pad token needed by data.mode={cfg.mode}")
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
