"""On-disk cache of packed token arrays, keyed by everything that changes them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dlm.config import DataConfig
from dlm.data.sources import source_files

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

CACHE_VERSION = 1
ARRAYS = ("train_ids", "train_mask", "val_ids", "val_mask")
Splits = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]
log = logging.getLogger(__name__)


def cache_key(cfg: DataConfig, tokenizer: PreTrainedTokenizerFast) -> str:
    """Hex digest of the data config (minus cache_dir), the size / mtime of the local files read and the tokenizer."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "cache_dir"}
    files = source_files(cfg.source, "train", cfg)
    if cfg.val_source:
        files += source_files(cfg.val_source, "valid", cfg)
    stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file()]
    tokenizer_state = tokenizer.backend_tokenizer.to_str() + json.dumps(tokenizer.special_tokens_map, sort_keys=True)
    payload = json.dumps(
        {"version": CACHE_VERSION, "data": settings, "files": stats, "tokenizer": _digest(tokenizer_state)},
        sort_keys=True,
    )
    return _digest(payload)[:20]


def cached_splits(cfg: DataConfig, tokenizer: PreTrainedTokenizerFast, build: Callable[[], Splits]) -> Splits:
    """build() or, when cfg.cache_dir is set, its result saved in / loaded from ``<cache_dir>/tokens-<key>.pt``."""
    if not cfg.cache_dir:
        return build()
    path = Path(cfg.cache_dir).expanduser() / f"tokens-{cache_key(cfg, tokenizer)}.pt"
    if path.is_file():
        try:
            arrays = torch.load(path, weights_only=True)
            return tuple(arrays[name] for name in ARRAYS)  # type: ignore[return-value]
        except Exception as err:  # a truncated or foreign file: rebuild and overwrite it
            log.warning("ignoring unreadable token cache %s (%s)", path, err)
    splits = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(dict(zip(ARRAYS, splits, strict=True)), partial)
    os.replace(partial, path)
    return splits


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
