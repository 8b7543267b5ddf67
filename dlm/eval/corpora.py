"""Zero-shot evaluation corpora: the rows MDLM / SEDD score, from Hugging Face or from local copies.

A corpus yields a list of *rows* exactly as the Hugging Face dataset has them (blank WikiText rows included: in
wrap mode each row is followed by EOS, so they count; MDLM `dataloader.py`, ALGORITHMS §1.6), then its detokenizer
is applied row by row. Default splits follow MDLM: validation for PTB, WikiText and scientific papers; test for
LM1B, AG News and LAMBADA. `name@split` picks another split, e.g. `lm1b@validation`. `wikitext2` / `wikitext103`
are the tokenized v1 configs (with <unk>); MDLM and SEDD score the raw v1 configs, `wikitext2-raw` /
`wikitext103-raw` here (their test sets hold the same text; the local copy is wiki.test.raw, test split only).

Local copies (``data_dir``, laid out as ../shared/data, see its SOURCES.md) rebuild the Hugging Face rows:
PTB lines stripped; WikiText lines with their newline, blank lines as ""; the WikiText-103 HF rows CSV as stored;
LM1B lines; scientific_papers JSON lines with article = "\\n".join(article_text). Any other name that is a local
.txt / .jsonl / .csv file (optionally .gz) or ``hf:NAME[:CONFIG]`` is read by dlm.data (no detokenizer).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dlm.config import DataConfig
from dlm.data.sources import load_documents
from dlm.eval.detokenizers import get_detokenizer
from dlm.registry import ConfigError

SPLIT_NAMES = {"validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
               "test": "test", "train": "train"}


@dataclass(frozen=True)
class Corpus:
    """hf: (dataset path, config); column: the text column; split: MDLM's evaluation split;
    local: split -> (file under data_dir, reader name); detokenizer: a name in DETOKENIZERS or ""."""

    name: str
    hf: tuple[str, str | None]
    column: str
    split: str
    detokenizer: str
    local: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalTexts:
    """Detokenized rows of one split of one corpus, and where they came from."""

    name: str
    split: str
    rows: list[str]
    source: str
    detokenizer: str


def _wikitext(config: str, folder: str, valid: str, test: str, reader: str) -> dict:
    local = {"test": (f"{folder}/{test}", reader)}
    if valid:
        local["validation"] = (f"{folder}/{valid}", reader)
    return {"hf": ("Salesforce/wikitext", config), "column": "text", "split": "validation",
            "detokenizer": "wikitext", "local": local}


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
    Corpus("ag_news", ("fancyzhx/ag_news", None), "text", "test", ""),
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


READERS: dict[str, Callable[[str], list[str]]] = {
    "stripped_lines": lambda text: [line.strip() for line in _lines(text)],
    "hf_lines": _hf_lines,
    "csv_rows": _csv_rows,
    "jsonl_text": lambda text: [json.loads(line)["text"] for line in _lines(text) if line.strip()],
    "papers": _papers_rows,
}


def parse_name(spec: str) -> tuple[str, str]:
    """'name@split' -> (name, split) with split '' when absent ('dev' / 'valid' / 'val' mean 'validation')."""
    name, _, split = spec.strip().partition("@")
    if split and split not in SPLIT_NAMES:
        raise ConfigError(f"unknown split '{split}' in '{spec}'; use @validation, @test or @train")
    return ALIASES.get(name, name), SPLIT_NAMES.get(split, "")


def load_eval_texts(spec: str, *, data_dir: str = "", data_cfg: DataConfig | None = None) -> EvalTexts:
    """Detokenized rows of `spec` ('name' or 'name@split'): a corpus in CORPORA, a local file or hf:NAME[:CONFIG].

    data_dir: read the named corpora from local copies under it instead of Hugging Face.
    data_cfg: text_field / doc_split for user files (default DataConfig()).
    """
    name, split = parse_name(spec)
    corpus = CORPORA.get(name)
    if corpus is None:
        return _user_texts(name, split or "test", data_cfg or DataConfig())
    split = split or corpus.split
    if data_dir:
        rows, source = _local_rows(corpus, split, Path(data_dir).expanduser())
    else:
        rows, source = _hf_rows(corpus, split)
    detok = get_detokenizer(corpus.detokenizer)
    return EvalTexts(name, split, [detok(r) for r in rows] if detok else rows, source, corpus.detokenizer)


def _user_texts(name: str, split: str, cfg: DataConfig) -> EvalTexts:
    if not (name.startswith("hf:") or "/" in name or "." in name):
        raise ConfigError(f"unknown zero-shot dataset '{name}'; choose one of: {', '.join(CORPORA)}, "
                          "a local .txt/.jsonl/.csv file or hf:NAME[:CONFIG]")
    rows = load_documents(name, split, cfg)
    where = name if name.startswith("hf:") else str(Path(name).expanduser().resolve())
    return EvalTexts(name, split, rows, where, "")


def _local_rows(corpus: Corpus, split: str, data_dir: Path) -> tuple[list[str], str]:
    if split not in corpus.local:
        has = ", ".join(f"{corpus.name}@{s}" for s in corpus.local) or "none"
        raise ConfigError(f"no local copy of {corpus.name} {split} (local splits: {has}); drop --data-dir to load "
                          f"{corpus.hf[0]} from Hugging Face, or pass a local file path")
    relative, reader = corpus.local[split]
    path = data_dir / relative
    return READERS[reader](_read_bytes(path)), str(path)


def _hf_rows(corpus: Corpus, split: str) -> tuple[list[str], str]:
    path, config = corpus.hf
    try:
        import datasets

        data = datasets.load_dataset(path, config, split=split)
    except Exception as err:  # offline, renamed on the hub, no such split: one line for the user
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot load {corpus.name} from Hugging Face ({path}, {config}, {split}): {reason}; "
                          "use --data-dir for local copies") from None
    return [row if isinstance(row, str) else "" for row in data[corpus.column]], f"hf:{path}:{config or ''}@{split}"
