from __future__ import annotations

import csv
import gzip
import json

import pytest

from dlm.data import read_documents
from dlm.registry import ConfigError

TEXT = "Para one,\nline two.\n\n  \nPara two.\r\n\r\n\n  indented para three\n"


def write(path, text: str):
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, newline="")
    return path


@pytest.mark.parametrize("name", ["docs.txt", "docs.txt.gz"])
def test_txt_doc_splits(tmp_path, name):
    path = write(tmp_path / name, TEXT)
    assert read_documents(path, doc_split="blank_line") == [
        "Para one,\nline two.",
        "Para two.",
        "  indented para three",
    ]
    assert read_documents(path, doc_split="line") == ["Para one,", "line two.", "Para two.", "  indented para three"]
    assert read_documents(path, doc_split="file") == [TEXT]


@pytest.mark.parametrize("name", ["docs.jsonl", "docs.jsonl.gz"])
def test_jsonl_field(tmp_path, name):
    lines = [{"text": "first\ndoc", "id": 1}, {"text": "  "}, {"text": "second", "other": "x"}]
    path = write(tmp_path / name, "\n".join(json.dumps(r) for r in lines) + "\n\n")
    assert read_documents(path) == ["first\ndoc", "second"]  # the blank document is dropped
    with pytest.raises(ConfigError, match=r"no field 'body'.*data.text_field"):
        read_documents(path, text_field="body")


def test_jsonl_invalid_line_names_the_line(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"text": "ok"}\n{"text": \n')
    with pytest.raises(ConfigError, match="line 2 is not valid JSON"):
        read_documents(path)


@pytest.mark.parametrize("name", ["docs.csv", "docs.csv.gz"])
def test_csv_column_with_quotes_commas_and_newlines(tmp_path, name):
    rows = [["id", "body"], ["1", 'He said, "hi"\nthen left'], ["2", ""], ["3", "plain"]]
    with open(tmp_path / "plain.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    path = write(tmp_path / name, (tmp_path / "plain.csv").read_text())
    assert read_documents(path, text_field="body") == ['He said, "hi"\nthen left', "plain"]
    with pytest.raises(ConfigError, match=r"no column 'text'.*id, body"):
        read_documents(path)


def test_one_column_csv_uses_its_only_column(tmp_path):
    path = write(tmp_path / "rows.csv", 'sentence\n"a, b"\nc\n')
    assert read_documents(path) == ["a, b", "c"]


def test_file_errors_are_one_line_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown file format 'data.parquet'"):
        read_documents(tmp_path / "data.parquet")
    with pytest.raises(ConfigError, match="data file not found"):
        read_documents(tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="doc_split"):
        read_documents(write(tmp_path / "a.txt", "x"), doc_split="paragraph")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_documents(tmp_path / "latin1.txt")
    (tmp_path / "broken.txt.gz").write_bytes(b"not gzip")
    with pytest.raises(ConfigError, match="cannot read"):
        read_documents(tmp_path / "broken.txt.gz")
