from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from dlm.data import DataConfig, build_splits, build_tokenizer, split_documents, tokenizer_from_config
from dlm.data import splits as splits_module
from dlm.registry import ConfigError


def write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return str(path)


def test_tinyshakespeare_char_quickstart():
    cfg = DataConfig(seq_len=128)
    tok = tokenizer_from_config(cfg)
    assert len(tok) == 65 + 4  # the 65 characters of tiny shakespeare + <bos> <eos> <pad> <unk>
    train_ids, train_mask, val_ids, val_mask = build_splits(cfg, tok)
    assert train_mask is None and val_mask is None
    assert train_ids.dtype == torch.long and train_ids.shape[1] == val_ids.shape[1] == 128
    assert len(val_ids) > 0 and len(train_ids) > 10 * len(val_ids)
    bos, eos = tok.bos_token_id, tok.eos_token_id
    assert (train_ids[:, 0] == bos).all() and (train_ids[:, -1] == eos).all()
    train_docs, val_docs = split_documents(cfg)
    assert len(val_docs) == round(0.05 * (len(train_docs) + len(val_docs)))
    assert tok.decode(train_ids[0, 1:-1]).startswith(train_docs[0] + "<eos>" + train_docs[1])
    assert tok.decode(val_ids[0, 1:-1]).startswith(val_docs[0])  # validation is the held-out tail
    assert (val_ids == tok.unk_token_id).sum() == 0


def test_pad_mode_one_document_per_row(tmp_path):
    source = write_jsonl(tmp_path / "d.jsonl", ["short", "a much longer document here", "mid size"])
    val = write_jsonl(tmp_path / "v.jsonl", ["val one", "val two"])
    cfg = DataConfig(source=source, val_source=val, tokenizer="byte", seq_len=10, mode="pad")
    train_ids, train_mask, val_ids, _ = build_splits(cfg, build_tokenizer("byte"))
    assert train_ids.shape == (3, 10) and val_ids.shape == (2, 10)
    assert train_mask.sum(1).tolist() == [7, 10, 10]  # BOS + 5 bytes + EOS; the others are truncated to 8 bytes
    assert bytes(train_ids[0, 1:6].tolist()) == b"short" and train_ids[0, 6] == 257
    assert bytes(val_ids[1, 1:8].tolist()) == b"val two"
    assert (train_ids[~train_mask] == 258).all()


def test_val_too_small_for_a_block_is_a_config_error(tmp_path):
    source = write_jsonl(tmp_path / "d.jsonl", ["x" * 200] * 19 + ["tiny"])
    cfg = DataConfig(source=source, tokenizer="byte", seq_len=64)
    with pytest.raises(ConfigError, match=r"produced no blocks of length 64"):
        build_splits(cfg, build_tokenizer("byte"))


def test_single_document_cannot_be_held_out(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("just one document\n")
    with pytest.raises(ConfigError, match="single document"):
        split_documents(DataConfig(source=str(path), doc_split="file"))


def test_bad_mode_is_a_config_error():
    with pytest.raises(ConfigError, match=r"data.mode"):
        build_splits(DataConfig(mode="chunk"), build_tokenizer("byte"))


def test_cache_round_trip_and_invalidation(tmp_path, monkeypatch):
    source = write_jsonl(tmp_path / "d.jsonl", [f"document number {i} " * 3 for i in range(40)])
    cfg = DataConfig(source=source, tokenizer="byte", seq_len=32, cache_dir=str(tmp_path / "cache"))
    tok = build_tokenizer("byte")
    first = build_splits(cfg, tok)
    assert len(list((tmp_path / "cache").glob("tokens-*.pt"))) == 1

    def no_rebuild(*args):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(splits_module, "_build", no_rebuild)
    again = build_splits(cfg, tok)
    assert all(torch.equal(a, b) for a, b in zip(first[::2], again[::2], strict=True))
    assert again[1] is None and again[3] is None
    monkeypatch.undo()

    build_splits(dataclasses.replace(cfg, seq_len=16), tok)
    os.utime(source, ns=(0, 0))  # the file changed: a new key
    build_splits(cfg, tok)
    assert len(list((tmp_path / "cache").glob("tokens-*.pt"))) == 3


def test_val_source_reads_the_valid_split_of_a_named_source(tmp_path, monkeypatch):
    monkeypatch.setenv("DLM_DATA_DIR", str(tmp_path))
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "ptb.train.txt").write_text(" the cat sat \n" * 50)
    (tmp_path / "ptb" / "ptb.valid.txt").write_text(" a dog ran \n" * 20)
    cfg = DataConfig(source="ptb", val_source="ptb", tokenizer="char", seq_len=16)
    train_docs, val_docs = split_documents(cfg)
    assert train_docs == [" the cat sat "] * 50 and val_docs == [" a dog ran "] * 20
    tok = tokenizer_from_config(cfg)
    assert "d" not in tok.get_vocab()  # the char vocab comes from the training documents only
    _, _, val_ids, _ = build_splits(cfg, tok)
    assert (val_ids == tok.unk_token_id).any()
