"""Read documents from local text files: .txt / .jsonl / .csv, each optionally gzipped.

A document is one string. Documents that are empty or whitespace-only are dropped everywhere.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from pathlib import Path

from dlm.registry import ConfigError

TEXT_SUFFIXES = (".txt", ".tokens", ".raw")
DOC_SPLITS = ("line", "blank_line", "file")
_BLANK_LINE = re.compile(r"\n[^\S\n]*(?:\n[^\S\n]*)*\n")  # a run of one or more whitespace-only lines


def file_format(path: str | Path) -> str | None:
    """'txt' | 'jsonl' | 'csv' for a supported file name (a trailing .gz is allowed), else None."""
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith(TEXT_SUFFIXES):
        return "txt"
    for fmt in ("jsonl", "csv"):
        if name.endswith(f".{fmt}"):
            return fmt
    return None


def read_documents(path: str | Path, text_field: str = "text", doc_split: str = "blank_line") -> list[str]:
    """Documents of one local file.

    .txt (also .tokens / .raw): split by `doc_split`: 'line' (each non-blank line, without its newline),
    'blank_line' (paragraphs separated by whitespace-only lines) or 'file' (the whole file).
    .jsonl: the string field `text_field` of every line. .csv: the column `text_field` (header row required;
    a one-column CSV whose header differs from `text_field` uses its only column).
    Raises ConfigError for a missing file, an unknown format, a bad doc_split, invalid JSON or a missing field.
    """
    path = Path(path)
    fmt = file_format(path)
    if fmt is None:
        raise ConfigError(
            f"unknown file format '{path.name}': use .txt, .jsonl or .csv (each optionally .gz), a registered "
            "source name or hf:NAME[:CONFIG]"
        )
    if not path.is_file():
        raise ConfigError(f"data file not found: {path}")
    if fmt == "txt":
        _check_doc_split(doc_split)
        docs = split_text(_read_text(path), doc_split)
    elif fmt == "jsonl":
        docs = _jsonl_documents(_read_text(path), path, text_field)
    else:
        docs = _csv_documents(_read_text(path), path, text_field)
    return [d for d in docs if d.strip()]


def split_text(text: str, doc_split: str) -> list[str]:
    """Split one text into documents: 'line' | 'blank_line' | 'file'. Blank documents are kept (callers drop them)."""
    _check_doc_split(doc_split)
    if doc_split == "file":
        return [text]
    text = text.replace("\r\n", "\n")
    if doc_split == "line":
        return text.split("\n")
    return [d.strip("\n") for d in _BLANK_LINE.split(text)]


def _check_doc_split(doc_split: str) -> None:
    if doc_split not in DOC_SPLITS:
        raise ConfigError(f"unknown data.doc_split '{doc_split}'; choose one of: {', '.join(DOC_SPLITS)}")


def _read_text(path: Path) -> str:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.lower().endswith(".gz") else path.read_bytes()
        return raw.decode("utf-8")
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise ConfigError(f"cannot read data file {path}: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"data file {path} is not UTF-8 text (byte {err.start}); re-encode it as UTF-8") from None


def _jsonl_documents(text: str, path: Path, field: str) -> list[str]:
    docs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path} line {number} is not valid JSON ({err.msg}); want one object a line") from None
        if not isinstance(row, dict) or field not in row:
            keys = ", ".join(row) if isinstance(row, dict) else type(row).__name__
            raise ConfigError(f"{path} line {number} has no field '{field}' (has: {keys}); set data.text_field")
        if not isinstance(row[field], str):
            raise ConfigError(f"{path} line {number}: field '{field}' is {type(row[field]).__name__}, not a string")
        docs.append(row[field])
    return docs


def _csv_documents(text: str, path: Path, field: str) -> list[str]:
    csv.field_size_limit(2**31 - 1)  # long documents exceed the default 128 KiB cell limit
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return []
    if field in header:
        column = header.index(field)
    elif len(header) == 1:
        column = 0
    else:
        raise ConfigError(f"{path} has no column '{field}' (columns: {', '.join(header)}); set data.text_field")
    return [row[column] for row in reader if len(row) > column]
