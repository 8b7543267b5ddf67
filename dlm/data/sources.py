"""Data sources: named local corpora (registered in SOURCES), local files and HF datasets (``hf:NAME[:CONFIG]``).

A registered source is a callable ``(split, cfg) -> list[str]``; splits are 'train' | 'valid' | 'test'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlm.config import DataConfig
from dlm.data.paths import CORPUS_DIR, DATA_DIR_ENV, data_dir
from dlm.data.text_files import file_format, read_documents
from dlm.registry import SOURCES, ConfigError

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"validation": "valid", "val": "valid", "dev": "valid"}
_HF_SPLIT_NAMES = {"train": ("train",), "valid": ("validation", "valid", "dev"), "test": ("test",)}


def canonical_split(split: str) -> str:
    """'train' | 'valid' | 'test' ('validation', 'val' and 'dev' mean 'valid'). Raises ConfigError otherwise."""
    split = _SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise ConfigError(f"unknown data split '{split}'; choose one of: {', '.join(SPLITS)}")
    return split


@dataclass(frozen=True)
class LocalSource:
    """A named corpus stored as local files.

    files: split -> candidate file names inside the folder (the first that exists is used).
    folder: folder under the data dir ($DLM_DATA_DIR, default ../shared/data); ignored when bundled.
    doc_split: how .txt files split into documents; None follows data.doc_split.
    bundled: the files ship inside the package (dlm/data/corpus) and need no data dir.
    hint: what to use instead when the files are missing.
    """

    name: str
    files: dict[str, tuple[str, ...]]
    folder: str = ""
    doc_split: str | None = None
    bundled: bool = False
    hint: str = ""

    def path(self, split: str) -> Path:
        """The file holding `split`. Raises ConfigError when the split does not exist or its file is missing."""
        if split not in self.files:
            held_out = "" if split == "train" else "leave data.val_source empty to hold out data.val_fraction, or "
            has = ", ".join(self.files)
            raise ConfigError(f"source '{self.name}' has no local '{split}' split (has: {has}); {held_out}{self.hint}")
        root = CORPUS_DIR if self.bundled else data_dir() / self.folder
        candidates = [root / name for name in self.files[split]]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        if self.bundled:
            raise ConfigError(f"the bundled corpus {candidates[0]} is missing; reinstall dlm or restore the file")
        raise ConfigError(
            f"source '{self.name}' needs {candidates[0]}, which is missing; set {DATA_DIR_ENV} to the folder "
            f"that holds {self.folder}/, or {self.hint}"
        )

    def __call__(self, split: str, cfg: DataConfig) -> list[str]:
        return read_documents(self.path(split), cfg.text_field, self.doc_split or cfg.doc_split)


def _register(source: LocalSource) -> None:
    SOURCES.register(source.name)(source)


_register(LocalSource("tinyshakespeare", {"train": ("tinyshakespeare.txt",)}, bundled=True, hint="use a local file"))
_register(
    LocalSource(
        "ptb",
        {"train": ("ptb.train.txt", "ptb.train.txt.gz"), "valid": ("ptb.valid.txt",), "test": ("ptb.test.txt",)},
        folder="ptb",
        doc_split="line",
        hint="use hf:ptb_text_only with data.text_field=sentence",
    )
)
_register(
    LocalSource(
        "wikitext2",
        {"valid": ("valid.txt",), "test": ("test.txt",)},
        folder="wikitext-2",
        doc_split="line",
        hint="use hf:wikitext:wikitext-2-v1",
    )
)
_register(
    LocalSource(
        "wikitext103",
        {"valid": ("wikitext-103-v1.valid.hfrows.csv.gz",), "test": ("wikitext-103-v1.test.hfrows.csv.gz",)},
        folder="wikitext-103",
        hint="use hf:wikitext:wikitext-103-v1",
    )
)
_register(
    LocalSource(
        "lm1b",
        {"valid": ("1b_benchmark.dev.tokens.gz", "1b_benchmark.dev.tokens")},
        folder="lm1b",
        doc_split="line",
        hint="use hf:lm1b",
    )
)


def load_documents(source: str, split: str, cfg: DataConfig) -> list[str]:
    """The non-blank documents of `split` of `source`: a registered name, a local file or ``hf:NAME[:CONFIG]``.

    Local files have no splits: every split reads the whole file. Raises ConfigError (one line) for an unknown
    source, a missing file, an unknown format, a failed HF load or a dataset without documents.
    """
    split = canonical_split(split)
    if source.startswith("hf:"):
        docs = _hf_documents(source, split, cfg.text_field)
    elif (spec_source := parametric_source(source)) is not None:
        docs = spec_source.documents(source, split)
    elif source in SOURCES or not _looks_like_path(source):
        try:
            factory = SOURCES.get_factory(source)
        except ConfigError as err:
            raise ConfigError(f"{err}, a local .txt/.jsonl/.csv file or hf:NAME[:CONFIG]") from None
        docs = factory(split, cfg)
    else:
        docs = read_documents(Path(source).expanduser(), cfg.text_field, cfg.doc_split)
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise ConfigError(f"dataset '{source}' ({split}) has no documents: it is empty or blank; check the file")
    return docs


def source_files(source: str, split: str, cfg: DataConfig) -> list[Path]:
    """The local files behind `source` / `split` (empty for HF datasets and custom registered sources)."""
    split = canonical_split(split)
    if source.startswith("hf:") or parametric_source(source) is not None:
        return []
    factory = SOURCES.get(source)
    if isinstance(factory, LocalSource):
        return [factory.path(split)]
    return [] if factory is not None else [Path(source).expanduser()]


def parametric_source(source: str):
    """The source registered under the prefix of `source` ("task" of "task:mult4x4:5000") when it reads documents
    from the whole spec (has documents(spec, split)), else None."""
    prefix, sep, _ = source.partition(":")
    factory = SOURCES.get(prefix) if sep else None
    return factory if hasattr(factory, "documents") else None


def _looks_like_path(source: str) -> bool:
    return file_format(source) is not None or "/" in source or Path(source).expanduser().exists()


def _hf_documents(source: str, split: str, text_field: str) -> list[str]:
    """Documents of an HF dataset split, imported lazily. Every failure becomes one ConfigError line."""
    name, _, config = source.removeprefix("hf:").partition(":")
    if not name:
        raise ConfigError(f"data source '{source}' names no dataset; write hf:NAME or hf:NAME:CONFIG")
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"data source '{source}' needs the datasets package: pip install datasets") from None
    try:
        available = datasets.get_dataset_split_names(name, config or None)
        key = next((s for s in _HF_SPLIT_NAMES[split] if s in available), None)
        if key is None:
            raise ConfigError(
                f"HF dataset '{source}' has no {split} split (has: {', '.join(available)}); "
                "leave data.val_source empty to hold out data.val_fraction of train"
            )
        dataset = datasets.load_dataset(name, config or None, split=key)
    except ConfigError:
        raise
    except Exception as err:  # offline, unknown name, bad config, broken cache: all reported as one line
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot load HF dataset '{source}' ({reason}); check the name and network") from None
    columns = list(dataset.column_names)
    column = text_field if text_field in columns else columns[0] if len(columns) == 1 else None
    if column is None:
        raise ConfigError(
            f"HF dataset '{source}' has no column '{text_field}' (has: {', '.join(columns)}); set data.text_field"
        )
    return [text for text in dataset[column] if isinstance(text, str)]
