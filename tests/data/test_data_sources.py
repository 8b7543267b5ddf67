from __future__ import annotations

import hashlib

import pytest

from dlm.data import DataConfig, load_documents
from dlm.data.paths import CORPUS_DIR
from dlm.registry import SOURCES, ConfigError

CFG = DataConfig()


def test_tinyshakespeare_is_bundled_and_needs_no_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DLM_DATA_DIR", str(tmp_path))  # an empty data dir, as in a fresh clone
    path = CORPUS_DIR / "tinyshakespeare.txt"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    docs = load_documents("tinyshakespeare", "train", CFG)
    assert len(docs) == 7222
    assert docs[0] == "First Citizen:\nBefore we proceed any further, hear me speak."
    assert "\n\n".join(docs) == path.read_text().replace("\n\n\n", "\n\n").rstrip("\n")  # only blank lines lost
    assert "tinyshakespeare" in SOURCES


def test_doc_split_applies_to_tinyshakespeare():
    lines = load_documents("tinyshakespeare", "train", DataConfig(doc_split="line"))
    assert lines[:2] == ["First Citizen:", "Before we proceed any further, hear me speak."]


@pytest.mark.parametrize(
    ("split", "file", "tokens_with_eos", "lines"),
    [
        ("train", "ptb.train.txt.gz", 929589, 42068),
        ("valid", "ptb.valid.txt", 73760, 3370),
        ("test", "ptb.test.txt", 82430, 3761),
    ],
)
def test_ptb_sentences(shared_file, split, file, tokens_with_eos, lines):
    shared_file(f"ptb/{file}")
    docs = load_documents("ptb", split, CFG)
    assert len(docs) == lines
    assert sum(len(d.split()) for d in docs) + len(docs) == tokens_with_eos  # the standard Mikolov counts


def test_wikitext_and_lm1b_local_splits(shared_file):
    shared_file("wikitext-2/valid.txt")
    shared_file("wikitext-103/wikitext-103-v1.valid.hfrows.csv.gz")
    shared_file("lm1b/1b_benchmark.dev.tokens.gz")
    wt2 = load_documents("wikitext2", "valid", CFG)
    assert wt2[0] == " = Homarus gammarus = " and all(d.strip() for d in wt2)
    assert "<unk>" in " ".join(wt2)
    wt103 = load_documents("wikitext103", "validation", CFG)
    assert len(wt103) == len(wt2)  # the same articles, line for line
    assert wt103[0] == " = Homarus gammarus = \n"
    lm1b = load_documents("lm1b", "valid", CFG)
    assert len(lm1b) == 12216 and "\n" not in lm1b[0]


def test_named_source_uses_data_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DLM_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="DLM_DATA_DIR"):
        load_documents("ptb", "valid", CFG)
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "ptb.valid.txt").write_text(" a b c \n\n d e \n")
    assert load_documents("ptb", "valid", CFG) == [" a b c ", " d e "]


def test_missing_split_and_unknown_source_are_config_errors():
    with pytest.raises(ConfigError, match=r"no local 'train' split.*hf:wikitext"):
        load_documents("wikitext2", "train", CFG)
    with pytest.raises(ConfigError, match="did you mean 'tinyshakespeare'"):
        load_documents("tinyshakespear", "train", CFG)
    with pytest.raises(ConfigError, match="unknown data split"):
        load_documents("ptb", "holdout", CFG)


@pytest.mark.parametrize("content", ["", "\n \n\t\n"])
def test_empty_dataset_is_a_config_error(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_text(content)
    with pytest.raises(ConfigError, match="has no documents"):
        load_documents(str(path), "train", CFG)


class FakeHF:
    """Stands in for the datasets module: records calls and serves one in-memory split."""

    def __init__(self, splits: list[str], columns: dict[str, list]):
        self.splits, self.columns, self.calls = splits, columns, []

    def get_dataset_split_names(self, name, config):
        return self.splits

    def load_dataset(self, name, config, split):
        self.calls.append((name, config, split))
        return _Table(self.columns)


class _Table:
    def __init__(self, columns):
        self.columns = columns
        self.column_names = list(columns)

    def __getitem__(self, key):
        return self.columns[key]


def fake_datasets(monkeypatch, splits, columns) -> FakeHF:
    import datasets

    fake = FakeHF(splits, columns)
    monkeypatch.setattr(datasets, "get_dataset_split_names", fake.get_dataset_split_names)
    monkeypatch.setattr(datasets, "load_dataset", fake.load_dataset)
    return fake


def test_hf_source_name_config_split_and_column(monkeypatch):
    fake = fake_datasets(monkeypatch, ["train", "validation", "test"], {"text": ["a", "", " ", "b"], "n": [1, 2, 3, 4]})
    assert load_documents("hf:wikitext:wikitext-103-raw-v1", "valid", CFG) == ["a", "b"]
    assert fake.calls == [("wikitext", "wikitext-103-raw-v1", "validation")]
    load_documents("hf:openwebtext", "train", CFG)
    assert fake.calls[-1] == ("openwebtext", None, "train")


def test_hf_single_column_and_errors(monkeypatch):
    fake_datasets(monkeypatch, ["train", "test"], {"sentence": ["x y", "z"]})
    assert load_documents("hf:ptb_text_only", "train", CFG) == ["x y", "z"]
    with pytest.raises(ConfigError, match=r"no valid split.*has: train, test"):
        load_documents("hf:lm1b", "valid", CFG)
    fake_datasets(monkeypatch, ["train"], {"a": ["1"], "b": ["2"]})
    with pytest.raises(ConfigError, match="no column 'text'"):
        load_documents("hf:two_columns", "train", CFG)


def test_hf_unreachable_is_a_config_error(offline):
    with pytest.raises(ConfigError, match="cannot load HF dataset 'hf:no_such_dataset_xyz'"):
        load_documents("hf:no_such_dataset_xyz", "train", CFG)
