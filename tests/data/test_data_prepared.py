"""Prepared token shards: round trip, dtype, same rows as the in-memory pipeline, integrity errors, determinism."""

from __future__ import annotations

import dataclasses
import json
from itertools import islice

import numpy as np
import pytest
import torch

from dlm.cli import main
from dlm.data import DataConfig, TokenBatches, build_splits, build_tokenizer
from dlm.data.paths import CORPUS_DIR
from dlm.data.permutation import Permutation
from dlm.data.prepare import MANIFEST, prepare, token_dtype
from dlm.data.prepared import PreparedCorpus
from dlm.data.splits import token_sources, tokenizer_from_config
from dlm.data.text_files import read_documents
from dlm.registry import ConfigError

DOCS = ["Hello world.", "   ", "Second document\nwith two lines.", "", "ünïcødé ✓ third", "x" * 300, "last one"]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    return path


@pytest.fixture(scope="module")
def shakespeare(tmp_path_factory):
    """The first 30k characters of the bundled corpus, prepared with the byte tokenizer over 2 workers."""
    folder = tmp_path_factory.mktemp("sp")
    text = folder / "head.txt"
    text.write_text((CORPUS_DIR / "tinyshakespeare.txt").read_text()[:30_000])
    prepare(str(text), "byte", folder / "prepared", num_proc=2)
    return text, folder / "prepared"


def stream_of(folder, split="train"):
    corpus = PreparedCorpus(folder)
    part = corpus.split(split)
    return np.concatenate([np.fromfile(p, dtype=corpus.dtype) for p in part.paths]), np.fromfile(
        part.offsets_path, dtype=np.int64)


def test_shards_round_trip_to_the_tokenized_documents(corpus_file, tmp_path):
    manifest = prepare(str(corpus_file), "byte", tmp_path / "p", num_proc=3)
    tok = build_tokenizer("byte")
    kept = [d for d in DOCS if d.strip()]
    stream, offsets = stream_of(tmp_path / "p")
    assert stream.dtype == np.uint16 and manifest["dtype"] == "uint16"
    assert manifest["splits"]["train"]["documents"] == len(kept) == len(offsets) - 1
    assert len(manifest["splits"]["train"]["shards"]) == 3  # one per worker, in corpus order
    for d, doc in enumerate(kept):
        ids = stream[offsets[d] : offsets[d + 1]].tolist()
        assert ids[:-1] == tok(doc, add_special_tokens=False)["input_ids"] and ids[-1] == tok.eos_token_id
        assert tok.decode(ids[:-1]) == doc
    assert offsets[-1] == len(stream) == manifest["splits"]["train"]["tokens"]


def test_gpt2_shards_decode_to_the_corpus(shared_gpt2, tmp_path):
    docs = read_documents(CORPUS_DIR / "tinyshakespeare.txt")[:200]
    path = tmp_path / "head.txt"
    path.write_text("\n\n".join(docs))
    manifest = prepare(str(path), "gpt2", tmp_path / "p")
    tok = PreparedCorpus(tmp_path / "p").tokenizer()
    stream, offsets = stream_of(tmp_path / "p")
    assert manifest["vocab_size"] == len(tok) == 50258 and stream.dtype == np.uint16
    assert [tok.decode(stream[offsets[d] : offsets[d + 1] - 1]) for d in range(len(docs))] == docs
    assert set(stream[offsets[1:] - 1].tolist()) == {50256}  # <|endoftext|> ends every document


def test_uint32_when_the_vocabulary_exceeds_16_bits(tmp_path):
    assert token_dtype(2**16) == np.uint16 and token_dtype(2**16 + 1) == np.uint32
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(70_000)} | {"<eos>": 70_000, "<unk>": 70_001}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>").save_pretrained(
        str(tmp_path / "tok"))
    (tmp_path / "big.txt").write_text("w1 w69999\n\nw65536 w2 w65535\n")
    manifest = prepare(str(tmp_path / "big.txt"), str(tmp_path / "tok"), tmp_path / "p")
    stream, offsets = stream_of(tmp_path / "p")
    assert manifest["dtype"] == "uint32" and stream.dtype == np.uint32
    assert stream.tolist() == [1, 69999, 70_000, 65536, 2, 65535, 70_000] and offsets.tolist() == [0, 3, 7]


@pytest.mark.parametrize("overrides", [{}, {"add_bos_eos": False}, {"mode": "pad"}, {"val_fraction": 0.2}])
def test_prepared_rows_equal_the_in_memory_pipeline(shakespeare, overrides):
    text, folder = shakespeare
    cfg = DataConfig(source=f"prepared:{folder}", tokenizer="byte", seq_len=48, **overrides)
    tok = tokenizer_from_config(cfg)
    train, val = token_sources(cfg, tok)
    want = build_splits(dataclasses.replace(cfg, source=str(text)), build_tokenizer("byte"))
    for source, (ids, mask) in ((train, want[:2]), (val, want[2:])):
        got_ids, got_mask = source.rows(np.arange(len(source)))
        assert torch.equal(got_ids, ids)
        assert torch.equal(got_mask, mask if mask is not None else torch.ones_like(ids, dtype=torch.bool))


def test_batches_are_deterministic_under_a_seed_and_shard_over_ranks(shakespeare):
    _, folder = shakespeare
    cfg = DataConfig(source=f"prepared:{folder}", tokenizer="byte", seq_len=48)
    train, _ = token_sources(cfg, tokenizer_from_config(cfg))

    def take(seed, k=6, rank=0, world=1):
        return [b["input_ids"] for b in islice(TokenBatches(train, batch_size=8, seed=seed, rank=rank,
                                                            world_size=world), k)]

    first = take(3)
    assert all(torch.equal(a, b) for a, b in zip(first, take(3)))
    assert not torch.equal(torch.stack(first), torch.stack(take(4)))
    halves = zip(take(3, rank=0, world=2), take(3, rank=1, world=2))
    assert all(torch.equal(whole[r::2], part) for whole, pair in zip(first, halves) for r, part in enumerate(pair))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4099])
def test_permutation_is_a_seeded_bijection(n):
    order = Permutation(n, seed=11)(np.arange(n))
    assert sorted(order.tolist()) == list(range(n))
    assert np.array_equal(order, Permutation(n, seed=11)(np.arange(n)))
    if n >= 7:
        assert not np.array_equal(order, Permutation(n, seed=12)(np.arange(n)))
        assert not np.array_equal(order, np.arange(n))


def test_a_corrupt_or_truncated_shard_is_named_in_one_line(shakespeare, tmp_path):
    import shutil

    _, folder = shakespeare
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    shard = copy / json.loads((copy / MANIFEST).read_text())["splits"]["train"]["shards"][1]["file"]
    data = bytearray(shard.read_bytes())
    data[10] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="corrupt") as err:
        PreparedCorpus(copy)
    assert str(shard) in str(err.value) and "\n" not in str(err.value)
    shard.write_bytes(bytes(data[:-2]))
    with pytest.raises(ConfigError, match="truncated") as err:
        PreparedCorpus(copy, verify=False)
    assert str(shard) in str(err.value) and "\n" not in str(err.value)


def test_prepare_cli_and_its_errors(corpus_file, tmp_path, capsys):
    assert main(["data", "prepare", "--source", str(corpus_file), "--tokenizer", "byte", "--out",
                 str(tmp_path / "p")]) == 0
    assert "5 documents" in capsys.readouterr().out
    assert main(["data", "prepare", "--source", str(corpus_file), "--tokenizer", "byte", "--out",
                 str(tmp_path / "p")]) == 2  # not empty
    assert main(["data", "prepare", "--source", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "q")]) == 2
    assert not (tmp_path / "q").exists()
    assert "error: " in capsys.readouterr().err
    cfg = DataConfig(source=f"prepared:{tmp_path / 'p'}", tokenizer="gpt2")
    with pytest.raises(ConfigError, match="prepared with tokenizer byte"):
        tokenizer_from_config(cfg)
    with pytest.raises(ConfigError, match="not a prepared corpus"):
        PreparedCorpus(tmp_path)


def test_tiktoken_and_the_fast_tokenizer_write_the_same_shards(shared_gpt2, tmp_path):
    pytest.importorskip("tiktoken")
    docs = read_documents(CORPUS_DIR / "tinyshakespeare.txt")[:100] + ["a <|endoftext|> inside", "  tabs\tand  spaces "]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    assert prepare(str(path), "gpt2", tmp_path / "tk", encoder="tiktoken")["encoder"] == "tiktoken"
    assert prepare(str(path), "gpt2", tmp_path / "hf", encoder="hf")["encoder"] == "hf"
    tk, hf = stream_of(tmp_path / "tk"), stream_of(tmp_path / "hf")
    assert np.array_equal(tk[0], hf[0]) and np.array_equal(tk[1], hf[1])
    tok = PreparedCorpus(tmp_path / "hf").tokenizer()
    assert tok.decode(tk[0][tk[1][-3] : tk[1][-2] - 1]) == docs[-2]  # the special token's text stays text
    with pytest.raises(ConfigError, match="encoder tiktoken needs"):
        prepare(str(path), "byte", tmp_path / "x", encoder="tiktoken")


@pytest.mark.parametrize("spec", ["byte", "bert-base-uncased"])
def test_the_prepared_tokenizer_is_the_one_named(spec, corpus_file, tmp_path, shared_file):
    if spec == "bert-base-uncased":
        shared_file("tokenizers/bert-base-uncased/vocab.txt")
    prepare(str(corpus_file), spec, tmp_path / "p")
    built, loaded = build_tokenizer(spec), tokenizer_from_config(DataConfig(source=f"prepared:{tmp_path / 'p'}",
                                                                            tokenizer=spec))
    assert len(loaded) == len(built) and loaded.special_tokens_map == built.special_tokens_map
    assert loaded(DOCS[4])["input_ids"] == built(DOCS[4])["input_ids"]


def test_an_unreachable_hub_dataset_is_one_line_and_writes_nothing(offline, tmp_path):
    with pytest.raises(ConfigError, match="cannot load HF dataset 'hf:no-such/dataset'") as err:
        prepare("hf:no-such/dataset", "byte", tmp_path / "p")
    assert "\n" not in str(err.value) and not (tmp_path / "p").exists()
