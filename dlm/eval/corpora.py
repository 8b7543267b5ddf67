"""Zero-shot evaluation corpora: the rows MDLM / SEDD score, from Hugging Face or from local copies.

A corpus yields a list of *rows* exactly as the Hugging Face dataset has them (blank WikiText rows included: in
wrap mode each row is followed by EOS, so they count; MDLM `dataloader.py`; docs/likelihood.md), then its detokenizer
is applied row by row. Default splits follow MDLM: validation for PTB, WikiText and scientific papers; test for
LM1B, AG News and LAMBADA. `name@split` picks another split, e.g. `lm1b@validation`. `wikitext2` / `wikitext103`
are the tokenized v1 configs (with <unk>); MDLM and SEDD score the raw v1 configs, `wikitext2-raw` /
`wikitext103-raw` here (their test sets hold the same text; the local copy is wiki.test.raw, test split only).

Local copies (``data_dir``, laid out as ../shared/data, see its SOURCES.md) rebuild the Hugging Face rows:
PTB lines stripped; WikiText lines with their newline, blank lines as ""; the WikiText-103 HF rows CSV as stored;
LM1B lines; scientific_papers JSON lines with article = "\\n".join(article_text); the AG News CSV (class, title,
description; no header) with text = title + " " + description, as the HF builder.
``name[@split]=PATH`` reads a named corpus from any local file: the corpus's reader for that file format (else the
user-file reading below), its detokenizer and split name. Any other name that is a local .txt / .jsonl / .csv
file (optionally .gz) or ``hf:NAME[:CONFIG]`` is read by dlm.data (no detokenizer), as TextFormat says: the
text field (CSV: comma-separated columns are joined by a space; a headerless CSV names columns 0, 1, ...), how a
.txt splits into documents, whether a CSV has a header row. Unset fields fall back to the checkpoint's data config.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import socket
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dlm.config import DataConfig
from dlm.data.paths import DATA_DIR_ENV
from dlm.data.paths import data_dir as default_data_dir
from dlm.data.sources import load_documents
from dlm.data.text_files import file_format
from dlm.eval.detokenizers import get_detokenizer
from dlm.registry import ConfigError

HUB_HOST = "huggingface.co"
HUB_PROBE_SECONDS = 3.0
SPLIT_NAMES = {"validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
               "test": "test", "train": "train"}


@dataclass(frozen=True)
class Corpus:
    """hf: (dataset path, config); column: the text column; split: MDLM's evaluation split;
    local: split -> (file under data_dir, reader name); detokenizer: a name in DETOKENIZERS or "";
    readers: file format -> reader for name=PATH, beyond the formats of the local copies."""

    name: str
    hf: tuple[str, str | None]
    column: str
    split: str
    detokenizer: str
    local: dict[str, tuple[str, str]] = field(default_factory=dict)
    readers: dict[str, str] = field(default_factory=dict)

    def reader_for(self, path: Path) -> str | None:
        """The reader of a user's copy at `path`: by its format; a file without a known suffix gets the corpus's
        reader when it has only one. None: read it as a user file."""
        readers = {file_format(relative.partition("!")[2] or relative): reader
                   for relative, reader in self.local.values()} | self.readers
        fmt = file_format(path)
        if fmt is None and len(set(readers.values())) == 1:
            return next(iter(readers.values()))
        return readers.get(fmt)


@dataclass(frozen=True)
class EvalTexts:
    """Detokenized rows of one split of one corpus, where they came from and how a local file was read."""

    name: str
    split: str
    rows: list[str]
    source: str
    detokenizer: str
    reading: dict[str, str | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class TextFormat:
    """How user files are read; "" / None fall back to the checkpoint's data config (text_field, doc_split).

    text_field: .jsonl field or .csv column(s), "title,description" joins columns with a space, and a headerless CSV
    names its columns 0, 1, ...; doc_split: .txt documents (line | blank_line | file); csv_header: the first CSV
    row names the columns (False: it is data).
    """

    text_field: str = ""
    doc_split: str = ""
    csv_header: bool = True


def _wikitext(config: str, folder: str, valid: str, test: str, reader: str) -> dict:
    local = {"test": (f"{folder}/{test}", reader)}
    if valid:
        local["validation"] = (f"{folder}/{valid}", reader)
    return {"hf": ("Salesforce/wikitext", config), "column": "text", "split": "validation",
            "detokenizer": "wikitext", "local": local, "readers": {"txt": "hf_lines", "csv": "csv_rows"}}


def _papers(subset: str) -> dict:
    zip_name = f"scientific_papers_sample/{subset}_dummy_data.zip"
    member = f"dummy_data/{subset}-dataset.zip/{subset}-dataset"
    return {"hf": ("armanc/scientific_papers", subset), "column": "article", "split": "validation",
            "detokenizer": "scientific_papers",
            "local": {s: (f"{zip_name}!{member}/{f}.txt", "papers") for s, f in
                      (("train", "train"), ("validation", "val"), ("test", "test"))}}


CORPORA: dict[str, Corpus] = {c.name: c for c in [
    Corpus("ptb", ("ptb-text-only/ptb_text_only", None), "sentence", "validation", "ptb",
           {"train": ("ptb/ptb.train.txt.gz", "stripped_lines"), "validation": ("ptb/ptb.valid.txt", "stripped_lines"),
            "test": ("ptb/ptb.test.txt", "stripped_lines")}),
    Corpus("wikitext2", **_wikitext("wikitext-2-v1", "wikitext-2", "valid.txt", "test.txt", "hf_lines")),
    Corpus("wikitext103", **_wikitext("wikitext-103-v1", "wikitext-103", "wikitext-103-v1.valid.hfrows.csv.gz",
                                      "wikitext-103-v1.test.hfrows.csv.gz", "csv_rows")),
    Corpus("wikitext2-raw", **_wikitext("wikitext-2-raw-v1", "wikitext-2-raw", "", "wiki.test.raw", "hf_lines")),
    Corpus("wikitext103-raw", **_wikitext("wikitext-103-raw-v1", "wikitext-2-raw", "", "wiki.test.raw", "hf_lines")),
    Corpus("lm1b", ("lm1b", None), "text", "test", "lm1b",
           {"validation": ("lm1b/1b_benchmark.dev.tokens.gz", "stripped_lines")}),
    Corpus("lambada", ("EleutherAI/lambada_openai", "default"), "text", "test", "lambada",
           {"test": ("lambada/lambada_test.jsonl", "jsonl_text")}),
    Corpus("ag_news", ("fancyzhx/ag_news", None), "text", "test", "",
           {"test": ("ag_news/test.csv", "ag_news_csv"), "train": ("ag_news/train.csv", "ag_news_csv")}),
    Corpus("pubmed", **_papers("pubmed")),
    Corpus("arxiv", **_papers("arxiv")),
]}
ALIASES = {"scientific_papers_pubmed": "pubmed", "scientific_papers_arxiv": "arxiv", "wikitext-2": "wikitext2",
           "wikitext-103": "wikitext103"}


def _read_bytes(path: Path) -> str:
    """Text of a local file; `archive.zip!member` reads a member of a zip; .gz is decompressed."""
    archive, _, member = str(path).partition("!")
    if not Path(archive).is_file():
        raise ConfigError(f"local corpus file not found: {archive}")
    if member:
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member).decode("utf-8")
    raw = Path(archive).read_bytes()
    return (gzip.decompress(raw) if archive.endswith(".gz") else raw).decode("utf-8")


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _hf_lines(text: str) -> list[str]:
    """WikiText .tokens / .raw layout -> HF rows: each line with its newline, whitespace-only lines as ""."""
    return [line + "\n" if line.strip() else "" for line in _lines(text)]


def _csv_rows(text: str) -> list[str]:
    """The one-column HF rows CSV (no header; "" rows are blank lines)."""
    return [row[0] if row else "" for row in csv.reader(io.StringIO(text, newline=""))]


def _papers_rows(text: str) -> list[str]:
    return ["\n".join(json.loads(line)["article_text"]) for line in _lines(text) if line.strip()]


def csv_columns(text: str, fields: list[str], header: bool, where: str = "the CSV file",
                skip_space: bool = False) -> list[str]:
    """Rows of a CSV: the named columns joined by a space (header=False: columns are named 0, 1, ...); a file with
    one column uses it whatever its name. skip_space: drop spaces after each comma (csv skipinitialspace)."""
    csv.field_size_limit(2**31 - 1)
    table = list(csv.reader(io.StringIO(text, newline=""), skipinitialspace=skip_space))
    names = table[0] if header and table else [str(i) for i in range(max(map(len, table), default=0))]
    fields = names[:1] if len(names) == 1 else fields
    missing = [f for f in fields if f not in names]
    if missing:
        hint = "pass --no-header for a file without a header row; " if header else ""
        raise ConfigError(f"{where} has no column '{missing[0]}' (columns: {', '.join(names)}); {hint}"
                          "choose the text column(s) with --text-field")
    columns = [names.index(f) for f in fields]
    return [" ".join(row[c] for c in columns if c < len(row)) for row in table[1 if header else 0:]]


def _ag_news_rows(text: str) -> list[str]:
    """The AG News CSV: class, title, description without a header -> title + " " + description (HF's text)."""
    return csv_columns(text, ["1", "2"], header=False, where="the AG News CSV", skip_space=True)


READERS: dict[str, Callable[[str], list[str]]] = {
    "stripped_lines": lambda text: [line.strip() for line in _lines(text)],
    "hf_lines": _hf_lines,
    "csv_rows": _csv_rows,
    "jsonl_text": lambda text: [json.loads(line)["text"] for line in _lines(text) if line.strip()],
    "papers": _papers_rows,
    "ag_news_csv": _ag_news_rows,
}


def parse_name(spec: str) -> tuple[str, str]:
    """'name@split' -> (name, split) with split '' when absent ('dev' / 'valid' / 'val' mean 'validation')."""
    name, _, split = spec.strip().partition("@")
    if split and split not in SPLIT_NAMES:
        raise ConfigError(f"unknown split '{split}' in '{spec}'; use @validation, @test or @train")
    return ALIASES.get(name, name), SPLIT_NAMES.get(split, "")


def load_eval_texts(spec: str, *, data_dir: str = "", data_cfg: DataConfig | None = None,
                    text_format: TextFormat | None = None) -> EvalTexts:
    """Detokenized rows of `spec`: 'name', 'name@split' or 'name[@split]=PATH' for a corpus in CORPORA, a local
    file or hf:NAME[:CONFIG].

    data_dir: read the named corpora from local copies under it only. Without it, a local copy under the default
        data dir (dlm.data.paths.data_dir(): $DLM_DATA_DIR, else ../shared/data beside the checkout) is read when
        present, else Hugging Face; offline (HF_HUB_OFFLINE=1, or the hub unreachable) that fails at once with a
        one-line ConfigError naming the local paths looked in.
    data_cfg: text_field / doc_split for user files where text_format leaves them unset (default DataConfig()).
    """
    spec, _, path = spec.partition("=")
    name, split = parse_name(spec)
    corpus = CORPORA.get(name)
    fmt = _resolve_format(text_format or TextFormat(), data_cfg or DataConfig())
    if corpus is None:
        if path:
            raise ConfigError(f"'{spec}={path}': only the named corpora ({', '.join(CORPORA)}) take =PATH; "
                              "pass the file path alone")
        return _user_texts(name, split or "test", fmt)
    split = split or corpus.split
    if path:
        rows, source, reading = _override_rows(corpus, split, Path(path).expanduser(), fmt)
    elif data_dir:
        (rows, source), reading = _local_rows(corpus, split, Path(data_dir).expanduser()), {}
    else:
        (rows, source), reading = _default_rows(corpus, split), {}
    detok = get_detokenizer(corpus.detokenizer)
    return EvalTexts(name, split, [detok(r) for r in rows] if detok else rows, source, corpus.detokenizer, reading)


def _resolve_format(fmt: TextFormat, cfg: DataConfig) -> TextFormat:
    return TextFormat(fmt.text_field or cfg.text_field, fmt.doc_split or cfg.doc_split, fmt.csv_header)


def _user_texts(name: str, split: str, fmt: TextFormat) -> EvalTexts:
    if not (name.startswith("hf:") or "/" in name or "." in name):
        raise ConfigError(f"unknown zero-shot dataset '{name}'; choose one of: {', '.join(CORPORA)}, "
                          "a local .txt/.jsonl/.csv file or hf:NAME[:CONFIG]")
    where = name if name.startswith("hf:") else str(Path(name).expanduser().resolve())
    return EvalTexts(name, split, _user_rows(name, split, fmt), where, "", _reading(name, fmt))


def _user_rows(name: str, split: str, fmt: TextFormat) -> list[str]:
    """Non-blank documents of a user file or HF dataset (CSVs read here: header or not, columns joined)."""
    if file_format(name) == "csv":
        fields = [f.strip() for f in fmt.text_field.split(",") if f.strip()]
        rows = csv_columns(_read_bytes(Path(name).expanduser()), fields, fmt.csv_header, where=name)
        return [row for row in rows if row.strip()]
    return load_documents(name, split, DataConfig(text_field=fmt.text_field, doc_split=fmt.doc_split))


def _reading(name: str, fmt: TextFormat) -> dict[str, str | bool]:
    """The reading settings that applied to this file, for the results."""
    kind = "hf" if name.startswith("hf:") else file_format(name)
    out: dict[str, str | bool] = {"text_field": fmt.text_field} if kind in ("hf", "jsonl", "csv") else {}
    if kind == "txt":
        out["doc_split"] = fmt.doc_split
    if kind == "csv":
        out["csv_header"] = fmt.csv_header
    return out


def _override_rows(corpus: Corpus, split: str, path: Path, fmt: TextFormat) -> tuple[list[str], str, dict]:
    """A named corpus read from the user's file: the corpus's reader for that file format, else as a user file."""
    reader = corpus.reader_for(path)
    if reader is None:
        return _user_rows(str(path), split, fmt), str(path.resolve()), _reading(str(path), fmt)
    return READERS[reader](_read_bytes(path)), str(path.resolve()), {"reader": reader}


def _local_rows(corpus: Corpus, split: str, data_dir: Path) -> tuple[list[str], str]:
    if split not in corpus.local:
        has = ", ".join(f"{corpus.name}@{s}" for s in corpus.local) or "none"
        raise ConfigError(f"no local copy of {corpus.name} {split} (local splits: {has}); drop --data-dir to load "
                          f"{corpus.hf[0]} from Hugging Face, or pass a local file path")
    relative, reader = corpus.local[split]
    path = data_dir / relative
    if not Path(str(path).partition("!")[0]).is_file():
        raise ConfigError(f"no local copy of {corpus.name} {split}: {path} not found; check --data-dir (laid out "
                          "as ../shared/data), or pass a local file path")
    return READERS[reader](_read_bytes(path)), str(path)


def _default_rows(corpus: Corpus, split: str) -> tuple[list[str], str]:
    """The local copy under the default data dir when it is there, else Hugging Face (never tried offline)."""
    local = _local_path(corpus, split, default_data_dir())
    if local is not None and Path(str(local).partition("!")[0]).is_file():
        return _local_rows(corpus, split, default_data_dir())
    looked = f"looked in {local}" if local is not None else f"the local copies hold no {split} split"
    if hub_offline():
        raise ConfigError(f"no local copy of {corpus.name} {split} ({looked}) and Hugging Face is offline; set "
                          f"--data-dir or ${DATA_DIR_ENV} to a folder laid out as ../shared/data, or pass a local "
                          "file path")
    return _hf_rows(corpus, split, looked)


def hub_offline() -> bool:
    """True when Hugging Face must not or cannot be reached: HF_HUB_OFFLINE / HF_DATASETS_OFFLINE /
    TRANSFORMERS_OFFLINE set, or no TCP connection to the hub within a few seconds, name lookup included
    (instead of the hub client's retries with backoff, ~25 s)."""
    if any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
           for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    return not _hub_reachable(HUB_PROBE_SECONDS)


def _hub_reachable(seconds: float) -> bool:
    """A TCP connection to the hub within `seconds`, name lookup included: `create_connection`'s timeout does not
    bound the DNS lookup (getaddrinfo blocks for as long as the resolver likes, minutes on a machine with a dead
    resolver), so the probe runs in a daemon thread that is abandoned when the time is up."""
    reached = threading.Event()

    def probe() -> None:
        try:
            socket.create_connection((HUB_HOST, 443), timeout=seconds).close()
            reached.set()
        except OSError:
            pass

    thread = threading.Thread(target=probe, name="dlm-hub-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    return reached.is_set()


def _local_path(corpus: Corpus, split: str, data_dir: Path) -> Path | None:
    return data_dir / corpus.local[split][0] if split in corpus.local else None


def _hf_rows(corpus: Corpus, split: str, looked: str) -> tuple[list[str], str]:
    path, config = corpus.hf
    try:
        import datasets

        data = datasets.load_dataset(path, config, split=split)
    except Exception as err:  # offline, renamed on the hub, no such split: one line for the user
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot load {corpus.name} from Hugging Face ({path}, {config}, {split}): {reason}; no "
                          f"local copy either ({looked}): use --data-dir for local copies") from None
    return [row if isinstance(row, str) else "" for row in data[corpus.column]], f"hf:{path}:{config or ''}@{split}"
