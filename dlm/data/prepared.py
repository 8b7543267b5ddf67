"""Read a `dlm data prepare` folder: verified token shards, cut into rows on demand (``data.source: prepared:DIR``).

Memory stays constant whatever the corpus size: every read copies the slices it needs out of the shard files with
positional reads (os.pread), so shard pages live only in the kernel's page cache and are never mapped into the
process (a memmap, as nanoGPT's train.py uses, charges each touched page to the process's peak RSS while it is
mapped: +14% at 1 GB against 100 MB in benchmarks/bench_prepare.json), and the epoch order is an O(1) Permutation
(dlm/data/permutation.py).
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlm.config import DataConfig
from dlm.data.packing import Packing, Ragged, pad
from dlm.data.prepare import FORMAT, MANIFEST, TOKENIZER_DIR, VERSION, sha256
from dlm.data.rows import TokenSource
from dlm.registry import ConfigError

PREFIX = "prepared:"


def check_file(folder: Path, entry: dict[str, Any], *, verify: bool) -> Path:
    """The file of a manifest entry after a size check (and, with verify, a sha256 check). One-line ConfigError."""
    path = folder / entry["file"]
    if not path.is_file():
        raise ConfigError(f"prepared file {path} is missing; re-run dlm data prepare into a new folder")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise ConfigError(f"prepared file {path} is truncated or altered: {size} bytes, the manifest says "
                          f"{entry['bytes']}; re-run dlm data prepare into a new folder")
    if verify and sha256(path) != entry["sha256"]:
        raise ConfigError(f"prepared file {path} is corrupt: its sha256 differs from the manifest's; "
                          "re-run dlm data prepare into a new folder")
    return path


def read_slice(file, dtype: np.dtype, lo: int, hi: int) -> np.ndarray:
    """Elements [lo, hi) of a binary array file (an unbuffered file object) by one positional read, no mapping."""
    count = (hi - lo) * dtype.itemsize
    data = os.pread(file.fileno(), count, lo * dtype.itemsize)
    if len(data) != count:
        raise ConfigError(f"prepared file {file.name} is truncated: elements [{lo}, {hi}) are past its end; "
                          "re-run dlm data prepare into a new folder")
    return np.frombuffer(data, dtype=dtype)


class PreparedSplit:
    """One split's token stream (the shards concatenated) and document offsets, read by positional file reads."""

    def __init__(self, folder: Path, name: str, entry: dict[str, Any], dtype: np.dtype, *, verify: bool):
        self.name, self.dtype = name, dtype
        self.paths = [check_file(folder, shard, verify=verify) for shard in entry["shards"]]
        self.offsets_path = check_file(folder, entry["offsets"], verify=verify)
        sizes = np.array([shard["bytes"] // dtype.itemsize for shard in entry["shards"]], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(sizes)])  # (S + 1,) stream position of each shard
        self.num_tokens, self.num_documents = int(entry["tokens"]), int(entry["documents"])

    def document_spans(self, docs: np.ndarray) -> np.ndarray:
        """(n, 2) stream [start, stop) of documents `docs` (n,), each stop just past the document's EOS."""
        with open(self.offsets_path, "rb", buffering=0) as file:
            pairs = [read_slice(file, np.dtype(np.int64), doc, doc + 2) for doc in np.asarray(docs).tolist()]
        return np.stack(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)

    def tokens(self, spans: np.ndarray) -> list[np.ndarray]:
        """The stream slices [start, stop) of `spans` (n, 2), as int64 arrays; slices may cross shard ends."""
        files: dict[int, Any] = {}
        out = []
        with ExitStack() as opened:  # every shard file opened here is closed on the way out, errors included
            for start, stop in spans.tolist():
                out.append(self._slice(start, stop, files, opened))
        return out

    def _slice(self, start: int, stop: int, files: dict[int, Any], opened: ExitStack) -> np.ndarray:
        """Stream [start, stop) as int64, reading each shard it crosses through `files` (opened on first use)."""
        parts = []
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        for shard in range(first, len(self.paths)):
            lo, hi = max(start, self.starts[shard]), min(stop, self.starts[shard + 1])
            if lo >= hi:
                break
            if shard not in files:
                files[shard] = opened.enter_context(open(self.paths[shard], "rb", buffering=0))
            parts.append(read_slice(files[shard], self.dtype, lo - self.starts[shard], hi - self.starts[shard]))
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


class PreparedCorpus:
    """A prepared folder: its manifest, tokenizer and splits. Checks every file's size (and sha256) at open."""

    def __init__(self, folder: str | Path, *, verify: bool = True):
        self.folder = Path(folder).expanduser()
        manifest_path = self.folder / MANIFEST
        if not manifest_path.is_file():
            raise ConfigError(f"{self.folder} is not a prepared corpus (no {MANIFEST}); run dlm data prepare --out "
                              f"{self.folder} first")
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{manifest_path} is not valid JSON ({err.msg}); re-run dlm data prepare") from None
        if self.manifest.get("format") != FORMAT or self.manifest.get("version") != VERSION:
            raise ConfigError(f"{manifest_path} is not a {FORMAT} v{VERSION} manifest; re-run dlm data prepare")
        self.dtype = np.dtype(self.manifest["dtype"])
        self.splits = {name: PreparedSplit(self.folder, name, entry, self.dtype, verify=verify)
                       for name, entry in self.manifest["splits"].items()}

    def tokenizer(self):
        """The tokenizer the shards were written with (transformers PreTrainedTokenizerFast, offline)."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.folder / TOKENIZER_DIR), local_files_only=True)

    def split(self, name: str) -> PreparedSplit:
        if name not in self.splits:
            raise ConfigError(f"prepared corpus {self.folder} has no '{name}' split (has: {', '.join(self.splits)})")
        return self.splits[name]


class PreparedRows(TokenSource):
    """Rows of documents [first, last) of a prepared split, the same rows as packing.wrap / packing.pad would build.

    wrap: row i is stream[s + i * body : s + (i + 1) * body] (s = offsets[first]; the stream already ends every
    document with EOS), inside [BOS] ... [EOS] when add_bos_eos; the tail that fills no row is dropped.
    pad: row i is document first + i, truncated and padded as packing.pad does.
    """

    def __init__(self, split: PreparedSplit, packing: Packing, first: int = 0, last: int | None = None):
        self.split, self.packing = split, packing
        self.first, self.last = first, split.num_documents if last is None else last
        self.seq_len, self.padded = packing.seq_len, packing.mode == "pad"
        if self.last <= self.first:
            raise ConfigError(f"prepared split '{split.name}' has no documents to read; prepare a larger corpus")
        if packing.body < 1:
            raise ConfigError(f"data.seq_len={packing.seq_len} is too short for {packing.mode} mode; use at least 3")
        if packing.add_bos_eos and packing.bos is None:
            raise ConfigError(f"{packing.mode} mode with data.add_bos_eos=true needs a tokenizer with a bos token")
        start, stop = split.document_spans(np.array([self.first, self.last - 1]))[[0, 1], [0, 1]]
        self.start = int(start)
        self.num_rows = self.last - self.first if self.padded else int(stop - start) // packing.body

    def __len__(self) -> int:
        return self.num_rows

    def rows(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        index = np.asarray(index, dtype=np.int64)
        if self.padded:
            return self._documents(index)
        p = self.packing
        spans = self.start + np.stack([index * p.body, (index + 1) * p.body], axis=1)
        body = np.stack(self.split.tokens(spans)) if len(index) else np.zeros((0, p.body), dtype=np.int64)
        ids = torch.from_numpy(p.frame(body))
        return ids, torch.ones_like(ids, dtype=torch.bool)

    def _documents(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad mode: documents first + index without their EOS, packed by packing.pad (which adds BOS / EOS)."""
        p = self.packing
        ends = self.split.document_spans(self.first + index)
        spans = np.stack([ends[:, 0], np.minimum(ends[:, 1] - 1, ends[:, 0] + p.body)], axis=1)
        ragged = Ragged.from_lists(self.split.tokens(spans))
        return pad(ragged, p.seq_len, p.bos, p.eos, p.pad_id if p.pad_id is not None else p.eos, p.add_bos_eos)


def prepared_folder(source: str) -> str | None:
    """DIR of a ``prepared:DIR`` source, else None."""
    return source[len(PREFIX):] if source.startswith(PREFIX) else None


def prepared_sources(cfg: DataConfig, packing: Packing) -> tuple[PreparedRows, TokenSource | None]:
    """(train rows, validation rows or None) of ``cfg.source = prepared:DIR``.

    Validation: data.val_source when it is ``prepared:DIR2`` (its valid, else test, else train split); None when
    it is any other source (the caller packs it in memory); else DIR's valid split; else the last
    data.val_fraction of DIR's train documents, which training then does not see.
    """
    corpus = PreparedCorpus(prepared_folder(cfg.source))
    train = corpus.split("train")
    if cfg.val_source:
        if prepared_folder(cfg.val_source) is None:
            return PreparedRows(train, packing), None
        other = PreparedCorpus(prepared_folder(cfg.val_source))
        held = next(name for name in ("valid", "test", "train") if name in other.splits or name == "train")
        return PreparedRows(train, packing), PreparedRows(other.split(held), packing)
    if "valid" in corpus.splits:
        return PreparedRows(train, packing), PreparedRows(corpus.split("valid"), packing)
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={cfg.val_fraction} must be in (0, 1): {corpus.folder} has no valid "
                          "split and data.val_source is empty")
    held_out = min(train.num_documents - 1, max(1, round(train.num_documents * cfg.val_fraction)))
    cut = train.num_documents - held_out
    if cut < 1:
        raise ConfigError(f"prepared corpus {corpus.folder} has a single document, so none can be held out for "
                          "validation; set data.val_source")
    return PreparedRows(train, packing, 0, cut), PreparedRows(train, packing, cut)
