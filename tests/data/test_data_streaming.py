"""stream: sources: the same rows as wrap packing (no shuffle), deterministic under a seed, exact resume, ranks."""

from __future__ import annotations

import dataclasses
from itertools import islice

import pytest
import torch

from dlm.data import DataConfig, build_batches, build_splits, build_tokenizer
from dlm.data.paths import CORPUS_DIR
from dlm.data.streaming import StreamingBatches
from dlm.registry import ConfigError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "head.txt"
    path.write_text((CORPUS_DIR / "tinyshakespeare.txt").read_text()[:20_000])
    return path


def batches(corpus, seed=1, rank=0, world=1, **overrides):
    cfg = DataConfig(source=f"stream:{corpus}", val_source=str(corpus), tokenizer="byte", seq_len=32, **overrides)
    return build_batches(cfg, build_tokenizer("byte"), 8, seed=seed, rank=rank, world_size=world)[0]


def take(it, k):
    return [b["input_ids"] for b in islice(it, k)]


def test_unshuffled_stream_yields_the_wrap_rows_in_order(corpus):
    stream = batches(corpus)
    stream.shuffle_buffer = 0
    got = torch.cat(take(stream, 10))
    rows = build_splits(DataConfig(source=str(corpus), tokenizer="byte", seq_len=32), build_tokenizer("byte"))[0]
    assert len(rows) > len(got) and torch.equal(got, rows[: len(got)])


def test_stream_is_seeded_resumes_exactly_and_shards_over_ranks(corpus):
    first = take(batches(corpus), 6)
    assert all(torch.equal(a, b) for a, b in zip(first, take(batches(corpus), 6)))
    assert not torch.equal(first[0], take(batches(corpus, seed=2), 1)[0])
    resumed = batches(corpus)
    resumed.load_state_dict({"epoch": 0, "index": 4})
    assert all(torch.equal(a, b) for a, b in zip(first[4:], take(resumed, 2)))
    for rank in range(2):
        part = take(batches(corpus, rank=rank, world=2), 3)
        assert all(torch.equal(whole[rank::2], p) for whole, p in zip(first, part))


def test_stream_epochs_restart_and_errors_are_one_line(corpus, tmp_path):
    stream = batches(corpus)
    seen = []
    for batch in stream:
        seen.append(batch["input_ids"])
        if stream.epoch == 1:
            break
    rows_per_epoch = (len((CORPUS_DIR / "tinyshakespeare.txt").read_text()[:20_000].encode()) // 30) // 8 * 8
    assert stream.index == 1 and len(seen) - 1 == pytest.approx(rows_per_epoch / 8, abs=2)
    assert not torch.equal(seen[0], seen[-1])  # epoch 1 is reshuffled with seed + 1
    with pytest.raises(ConfigError, match="wrap mode"):
        batches(corpus, mode="pad")
    cfg = DataConfig(source=f"stream:{corpus}", tokenizer="byte", seq_len=32)
    with pytest.raises(ConfigError, match="data.val_source"):
        build_batches(cfg, build_tokenizer("byte"), 8)
    with pytest.raises(ConfigError, match="built from the training texts"):
        from dlm.data import tokenizer_from_config

        tokenizer_from_config(dataclasses.replace(cfg, tokenizer="char"))
    assert isinstance(stream, StreamingBatches)
