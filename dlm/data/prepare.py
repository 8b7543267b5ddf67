"""`dlm data prepare`: tokenize a corpus once into memory-mappable token shards (the nanoGPT recipe, leaner).

Layout of DIR:
  manifest.json              format, tokenizer spec, vocab size, dtype, special ids, and per split: token and
                             document counts, each file's size and sha256
  tokenizer/                 the tokenizer (save_pretrained), so training rebuilds exactly these ids offline
  <split>-<k:05d>.bin        the token stream of split (train | valid | test): every non-blank document's ids
                             followed by EOS, as dtype uint16 when the vocabulary fits (<= 65536 ids), else uint32
  <split>.offsets.bin        int64 (D + 1,): document d is stream[offsets[d] : offsets[d + 1] - 1], then its EOS

Each `datasets.map(batched=True, num_proc=N, with_rank=True)` worker tokenizes its contiguous slice of the corpus
with the fast tokenizer and appends the ids straight to its own shard file; only the per-document lengths go
back through Arrow. (nanoGPT's prepare.py maps ids into an int64 Arrow column and then copies them into one memmap
in a single process; writing from the workers skips that round trip.) Shard k holds worker k's slice, so the
shards concatenated are the corpus in order.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlm.data.text_datasets import TEXT, local_files, splits_of, text_dataset
from dlm.data.tokenizer import build_tokenizer, gpt2_tiktoken, special_tokens
from dlm.registry import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

FORMAT, VERSION = "dlm-prepared", 1
MANIFEST, TOKENIZER_DIR = "manifest.json", "tokenizer"
MAP_BATCH = 1000  # documents per tokenizer call
HASH_CHUNK = 1 << 24


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id (0..vocab_size-1) fits in 16 bits, else uint32."""
    if vocab_size > 2**32:
        raise ConfigError(f"vocabulary of {vocab_size} ids does not fit uint32 token shards")
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:05d}.bin"


def offsets_name(split: str) -> str:
    return f"{split}.offsets.bin"


ENCODERS = ("auto", "hf", "tiktoken")


class ShardWriter:
    """The map function: tokenize a batch of documents and append ids + EOS to worker `rank`'s shard file.

    Text is encoded as ordinary text: a special token's string inside a document ("<|endoftext|>") is spelled out,
    never turned into the special id (as nanoGPT's encode_ordinary). encoder: 'hf' (the fast tokenizer) or
    'tiktoken' (GPT-2 only; the same ids, several times faster).
    Returns {"length": [tokens incl. EOS per document, 0 for a blank one (dropped)]}. Picklable for num_proc.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerFast, folder: Path, split: str, dtype: np.dtype,
                 encoder: str = "hf"):
        self.tokenizer, self.folder, self.split, self.dtype = tokenizer, folder, split, dtype  # folder: the parts
        self.eos, self.encoder = special_tokens(tokenizer).eos, encoder
        self._tiktoken = None
        self.parent_pid = os.getpid()

    def encode(self, texts: list[str]) -> list[list[int]]:
        if self.encoder == "tiktoken":
            if self._tiktoken is None:  # built in each worker: cheaper than pickling the ranks
                self._tiktoken = gpt2_tiktoken()
            return self._tiktoken.encode_ordinary_batch(texts, num_threads=1)
        return self.tokenizer(texts, add_special_tokens=False, split_special_tokens=True, return_attention_mask=False,
                              return_token_type_ids=False, verbose=False)["input_ids"]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tiktoken": None}

    def __call__(self, batch: dict[str, list], rank: int | None) -> dict[str, list[int]]:
        if os.getpid() != self.parent_pid:  # a map worker (num_proc > 1): its own process, whose environment is ours
            os.environ["TOKENIZERS_PARALLELISM"] = "false"  # N workers x Rust threads would oversubscribe the cores
        texts = batch[TEXT]
        keep = [i for i, text in enumerate(texts) if isinstance(text, str) and text.strip()]
        ids = self.encode([texts[i] for i in keep])
        lengths = [0] * len(texts)
        for i, doc in zip(keep, ids):
            lengths[i] = len(doc) + 1
        sizes = np.fromiter((len(doc) + 1 for doc in ids), dtype=np.int64, count=len(ids))
        stream = np.empty(int(sizes.sum()), dtype=self.dtype)
        is_eos = np.zeros(len(stream), dtype=bool)
        is_eos[np.cumsum(sizes) - 1] = True
        stream[is_eos] = self.eos
        stream[~is_eos] = np.fromiter(chain.from_iterable(ids), dtype=self.dtype, count=len(stream) - len(ids))
        with open(self.folder / f"{self.split}-{rank or 0}.part", "ab") as handle:
            handle.write(stream.tobytes())
        return {"length": lengths}


def prepare(
    source: str, tokenizer: str, out: str | Path, *, num_proc: int = 1, text_field: str = TEXT,
    doc_split: str = "blank_line", splits: list[str] | None = None, encoder: str = "auto",
) -> dict[str, Any]:
    """Tokenize every split of `source` (hf:NAME[:CONFIG] or local files / globs) into `out`. Returns the manifest.

    tokenizer: a fixed spec (gpt2, byte, bert-base-uncased, a HF name or local dir); char / bpe:<N> are built
    from texts and so cannot be prepared. encoder: 'auto' (tiktoken for gpt2 where it is installed, else the
    fast tokenizer), 'hf' or 'tiktoken'. Raises ConfigError for a non-empty `out` or a corpus without documents.
    """
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty; choose a new folder or delete it")
    if tokenizer == "char" or tokenizer.startswith("bpe:"):
        raise ConfigError(f"tokenizer '{tokenizer}' is built from the texts; prepare with gpt2, byte or a HF name")
    if num_proc < 1:
        raise ConfigError(f"--num-proc {num_proc} must be at least 1")
    encoder = resolve_encoder(encoder, tokenizer)
    tok = build_tokenizer(tokenizer)
    if special_tokens(tok).eos is None:
        raise ConfigError(f"tokenizer '{tokenizer}' has no eos token to end documents with; pick another tokenizer")
    names = splits or splits_of(source)
    if not source.startswith("hf:"):
        local_files(source)  # fail on missing files before anything is written
    out.mkdir(parents=True, exist_ok=True)
    try:
        manifest = _prepare_splits(source, tokenizer, tok, out, names, num_proc, text_field, doc_split, encoder)
    except BaseException:  # never leave a folder that looks prepared but is not
        shutil.rmtree(out, ignore_errors=True)
        raise
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def resolve_encoder(encoder: str, tokenizer: str) -> str:
    """'hf' or 'tiktoken' for an --encoder choice; 'auto' picks tiktoken for gpt2 where it can be built."""
    if encoder not in ENCODERS:
        raise ConfigError(f"unknown --encoder '{encoder}'; choose one of: {', '.join(ENCODERS)}")
    if encoder == "hf":
        return encoder
    if tokenizer == "gpt2" and gpt2_tiktoken() is not None:
        return "tiktoken"
    if encoder == "tiktoken":
        raise ConfigError("--encoder tiktoken needs --tokenizer gpt2, pip install tiktoken and the local GPT-2 files; "
                          "use --encoder hf")
    return "hf"


def _prepare_splits(source: str, spec: str, tok: PreTrainedTokenizerFast, out: Path, names: list[str],
                    num_proc: int, text_field: str, doc_split: str, encoder: str) -> dict[str, Any]:
    """Save the tokenizer, write every split's shards; the manifest (written by the caller when all succeeded)."""
    tok.save_pretrained(str(out / TOKENIZER_DIR))
    dtype, specials = token_dtype(len(tok)), special_tokens(tok)
    manifest = {"format": FORMAT, "version": VERSION, "source": source, "text_field": text_field,
                "doc_split": doc_split, "tokenizer": spec, "encoder": encoder, "vocab_size": len(tok),
                "dtype": dtype.name, "bos_id": specials.bos, "eos_id": specials.eos, "pad_id": specials.pad,
                "splits": {}}
    with tempfile.TemporaryDirectory(prefix="cache-", dir=out) as cache:
        for split in names:
            dataset = text_dataset(source, split, text_field, doc_split, cache_dir=cache,
                                   num_proc=num_proc if num_proc > 1 else None)
            writer = ShardWriter(tok, Path(cache), split, dtype, encoder)
            manifest["splits"][split] = _prepare_split(dataset, writer, out, num_proc)
    if not any(s["documents"] for s in manifest["splits"].values()):
        raise ConfigError(f"data source '{source}' has no non-blank documents; check the files and --text-field")
    return manifest


def _prepare_split(dataset: Any, writer: ShardWriter, out: Path, num_proc: int) -> dict[str, Any]:
    """Map `writer` over `dataset`, then move the non-empty parts to numbered shards, write the offsets, hash."""
    procs = max(1, min(num_proc, len(dataset)))
    parts, split = writer.folder, writer.split
    mapped = dataset.map(writer, batched=True, batch_size=MAP_BATCH, with_rank=True, num_proc=procs if procs > 1
                         else None, remove_columns=[TEXT], load_from_cache_file=False,
                         cache_file_name=str(parts / f"{split}-lengths.arrow"), desc=f"tokenizing {split}")
    lengths = mapped.data.column("length").to_numpy().astype(np.int64)
    lengths = lengths[lengths > 0]
    written = sorted(parts.glob(f"{split}-*.part"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    shards = []
    for index, path in enumerate(p for p in written if p.stat().st_size > 0):  # rank order = corpus order
        shards.append(file_entry(path.rename(out / shard_name(split, index))))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    (out / offsets_name(split)).write_bytes(offsets.tobytes())
    tokens = sum(s["bytes"] for s in shards) // writer.dtype.itemsize
    if tokens != offsets[-1]:
        raise RuntimeError(f"{split}: shards hold {tokens} tokens but the documents sum to {offsets[-1]}")
    return {"tokens": int(tokens), "documents": len(lengths), "shards": shards,
            "offsets": file_entry(out / offsets_name(split))}


def file_entry(path: Path) -> dict[str, Any]:
    """{"file": name, "bytes": size, "sha256": hex digest} of one written file."""
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256(path)}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
