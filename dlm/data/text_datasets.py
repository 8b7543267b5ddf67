"""Corpora as Hugging Face `datasets` with one string column "text": ``hf:NAME[:CONFIG]`` or local files / globs.

Used where a corpus is too large for a list of strings: `dlm data prepare` (Dataset, mapped in parallel) and
``stream:`` sources (IterableDataset). Local .txt files are split into documents by the same rules as
dlm/data/text_files.py, but line by line, so memory stays flat; .jsonl / .csv go through the json / csv builders.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlm.data.sources import _HF_SPLIT_NAMES, canonical_split
from dlm.data.text_files import _check_doc_split, file_format
from dlm.registry import ConfigError

TEXT = "text"


def local_files(source: str) -> list[Path]:
    """The files named by `source`: comma-separated paths or globs, sorted. Raises ConfigError when none exist."""
    files: list[Path] = []
    for part in filter(None, (p.strip() for p in source.split(","))):
        matches = sorted(glob.glob(str(Path(part).expanduser()))) if glob.has_magic(part) else [part]
        files += [Path(m).expanduser() for m in matches]
    missing = [f for f in files if not f.is_file()]
    if not files or missing:
        raise ConfigError(f"data file not found: {missing[0] if missing else source}; give existing files or globs")
    formats = {file_format(f) for f in files}
    if None in formats or len(formats) > 1:
        raise ConfigError(f"data files {source} must all be .txt, all .jsonl or all .csv (each optionally .gz)")
    return files


def splits_of(source: str) -> list[str]:
    """Canonical splits ('train' | 'valid' | 'test') that `source` has; local files have only 'train'."""
    if not source.startswith("hf:"):
        return ["train"]
    datasets = _datasets(source)
    name, config = _hf_name(source)
    try:
        available = datasets.get_dataset_split_names(name, config)
    except Exception as err:  # offline, unknown name: one line
        raise ConfigError(f"cannot load HF dataset '{source}' ({_reason(err)}); check the name and network") from None
    return [split for split, names in _HF_SPLIT_NAMES.items() if any(n in available for n in names)]


def text_dataset(
    source: str, split: str, text_field: str = TEXT, doc_split: str = "blank_line", *, streaming: bool = False,
    cache_dir: str | None = None, num_proc: int | None = None,
) -> Any:
    """`split` of `source` as a datasets.Dataset (streaming=False) or IterableDataset with the column "text".

    cache_dir: where local files are converted to Arrow (hub datasets always use the HF cache, so a download is
    kept); num_proc: processes that download and convert a hub dataset. Rows may be blank or None (csv cells):
    consumers drop them, as load_documents does.
    """
    datasets = _datasets(source)
    split = canonical_split(split)
    try:
        if source.startswith("hf:"):
            ds = _hf(datasets, source, split, streaming, num_proc)
        else:
            ds = _local(datasets, source, split, text_field, doc_split, streaming, cache_dir)
    except ConfigError:
        raise
    except Exception as err:  # a broken file, offline hub, bad config: all one line
        raise ConfigError(f"cannot load '{source}' ({split}) through datasets ({_reason(err)})") from None
    columns = list(ds.column_names or [])
    column = text_field if text_field in columns else columns[0] if len(columns) == 1 else None
    if column is None:
        raise ConfigError(f"dataset '{source}' has no column '{text_field}' (has: {', '.join(columns)}); "
                          "set data.text_field / --text-field")
    ds = ds.select_columns([column])
    return ds.rename_column(column, TEXT) if column != TEXT else ds


def _hf(datasets: Any, source: str, split: str, streaming: bool, num_proc: int | None) -> Any:
    name, config = _hf_name(source)
    available = datasets.get_dataset_split_names(name, config)
    key = next((s for s in _HF_SPLIT_NAMES[split] if s in available), None)
    if key is None:
        raise ConfigError(f"HF dataset '{source}' has no {split} split (has: {', '.join(available)})")
    kwargs = {} if streaming else {"num_proc": num_proc}
    return datasets.load_dataset(name, config, split=key, streaming=streaming, **kwargs)


def _local(datasets: Any, source: str, split: str, text_field: str, doc_split: str, streaming: bool,
           cache_dir: str | None) -> Any:
    if split != "train":
        raise ConfigError(f"local files have one split, train; {split} comes from data.val_source or val_fraction")
    files = local_files(source)
    fmt = file_format(files[0])
    if fmt == "txt":
        _check_doc_split(doc_split)
        kwargs = {"gen_kwargs": {"files": [str(f) for f in files], "doc_split": doc_split},
                  "features": datasets.Features({TEXT: datasets.Value("string")})}
        if streaming:
            return datasets.IterableDataset.from_generator(_txt_documents, **kwargs)
        return datasets.Dataset.from_generator(_txt_documents, cache_dir=cache_dir, **kwargs)
    builder = "json" if fmt == "jsonl" else "csv"
    extra = {"keep_default_na": False} if builder == "csv" else {}  # empty cells stay "" instead of NaN
    return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train", streaming=streaming,
                                 cache_dir=cache_dir, **extra)


def _txt_documents(files: list[str], doc_split: str) -> Iterator[dict[str, str]]:
    """Documents of .txt files read line by line: the documents of text_files.split_text, blank ones dropped."""
    for file in files:
        for doc in _split_lines(_lines(Path(file)), doc_split):
            if doc.strip():
                yield {TEXT: doc}


def _lines(path: Path) -> Iterator[str]:
    """Lines split at "\\n" only (a trailing "\\r" of "\\r\\n" removed), as split_text sees them."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="\n") as handle:
        for line in handle:
            line = line[:-1] if line.endswith("\n") else line
            yield line[:-1] if line.endswith("\r") else line


def _split_lines(lines: Iterator[str], doc_split: str) -> Iterator[str]:
    if doc_split == "line":
        yield from lines
        return
    if doc_split == "file":
        yield "\n".join(lines)
        return
    paragraph: list[str] = []  # blank_line: a run of whitespace-only lines ends a document
    for line in lines:
        if line.strip():
            paragraph.append(line)
        elif paragraph:
            yield "\n".join(paragraph)
            paragraph = []
    if paragraph:
        yield "\n".join(paragraph)


def _hf_name(source: str) -> tuple[str, str | None]:
    name, _, config = source.removeprefix("hf:").partition(":")
    if not name:
        raise ConfigError(f"data source '{source}' names no dataset; write hf:NAME or hf:NAME:CONFIG")
    return name, config or None


def _datasets(source: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"data source '{source}' needs the datasets package: pip install datasets") from None
    return datasets


def _reason(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
