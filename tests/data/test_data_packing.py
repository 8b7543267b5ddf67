from __future__ import annotations

import numpy as np
import pytest
import torch

from dlm.data import Ragged, pad, wrap
from dlm.registry import ConfigError

BOS, EOS, PAD = 100, 101, 102
DOCS = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]


def test_wrap_mdlm_layout_exact():
    # stream: 1 2 3 E 4 5 E 6 7 8 9 E (12 tokens) -> 4 blocks of 3 body tokens, each framed by BOS ... EOS
    expected = [
        [BOS, 1, 2, 3, EOS],
        [BOS, EOS, 4, 5, EOS],
        [BOS, EOS, 6, 7, EOS],
        [BOS, 8, 9, EOS, EOS],
    ]
    assert wrap(DOCS, 5, BOS, EOS).tolist() == expected


def test_wrap_drops_remainder_and_keeps_document_order():
    rng = np.random.default_rng(0)
    docs = [list(rng.integers(0, 50, size=rng.integers(1, 40))) for _ in range(200)]
    seq_len = 16
    blocks = wrap(docs, seq_len, BOS, EOS)
    stream_len = sum(len(d) + 1 for d in docs)
    assert blocks.dtype == torch.long
    assert blocks.shape == (stream_len // (seq_len - 2), seq_len)
    assert (blocks[:, 0] == BOS).all() and (blocks[:, -1] == EOS).all()
    stream = blocks[:, 1:-1].reshape(-1).tolist()
    expected = [t for d in docs for t in [*d, EOS]]
    assert stream == expected[: len(stream)]  # documents separated by EOS, in order, remainder dropped
    assert len(expected) - len(stream) < seq_len - 2


def test_wrap_without_bos_eos_is_plain_cut():
    blocks = wrap(DOCS, 4, None, EOS, add_bos_eos=False)
    assert blocks.tolist() == [[1, 2, 3, EOS], [4, 5, EOS, 6], [7, 8, 9, EOS]]


def test_wrap_accepts_ragged_and_lists_alike():
    assert torch.equal(wrap(Ragged.from_lists(DOCS), 6, BOS, EOS), wrap(DOCS, 6, BOS, EOS))
    parts = Ragged.concat([Ragged.from_lists(DOCS[:1]), Ragged.from_lists(DOCS[1:])])
    assert torch.equal(wrap(parts, 6, BOS, EOS), wrap(DOCS, 6, BOS, EOS))


def test_wrap_too_little_data_gives_no_blocks_and_short_seq_len_errors():
    assert wrap([[1]], 8, BOS, EOS).shape == (0, 8)
    with pytest.raises(ConfigError, match="seq_len"):
        wrap(DOCS, 2, BOS, EOS)


def test_pad_rows_truncation_and_masks():
    ids, mask = pad([[1, 2, 3], [4], [5, 6, 7, 8, 9, 10]], 5, BOS, EOS, PAD)
    assert ids.tolist() == [
        [BOS, 1, 2, 3, EOS],
        [BOS, 4, EOS, PAD, PAD],
        [BOS, 5, 6, 7, EOS],  # truncated, still closed by EOS
    ]
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True] * 5, [True, True, True, False, False], [True] * 5]


def test_pad_without_bos_eos():
    ids, mask = pad([[1, 2], [3, 4, 5, 6, 7, 8]], 4, None, None, PAD, add_bos_eos=False)
    assert ids.tolist() == [[1, 2, PAD, PAD], [3, 4, 5, 6]]
    assert mask.sum(1).tolist() == [2, 4]
    assert (ids[~mask] == PAD).all()
