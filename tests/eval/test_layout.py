"""Requests laid out like training blocks: [start] + context (cut on the left) + continuation (+ EOS when full)."""

import pytest

from dlm.eval.layout import BlockLayout
from dlm.registry import ConfigError

BOS, EOS = 100, 101


def test_bos_eos_blocks_keep_position_L_minus_1_for_the_closing_eos():
    layout = BlockLayout(8, BOS, EOS)  # training blocks: [BOS] + 6 tokens + [EOS]
    assert layout.room == 6
    short = layout.place([1, 2], [3])
    assert (short.ids, short.start, short.stop) == ([BOS, 1, 2, 3], 3, 4)  # no EOS: the document may go on
    assert short.target().tolist() == [[False, False, False, True]]
    full = layout.place([1, 2, 3, 4, 5, 6, 7], [8, 9])  # cut to the last 4 tokens of context
    assert (full.ids, full.start, full.stop) == ([BOS, 4, 5, 6, 7, 8, 9, EOS], 5, 7)
    assert full.target().tolist() == [[False] * 5 + [True, True, False]]  # the block's EOS is context
    assert layout.place([BOS], [1, 2]).ids == [BOS, 1, 2]  # lm-eval's prefix token is not doubled
    assert layout.place([], [1, 2, 3, 4, 5, 6]).ids == [BOS, 1, 2, 3, 4, 5, 6, EOS]
    with pytest.raises(ConfigError, match="does not fit"):
        layout.place([], [1] * 7)


def test_stream_blocks_without_bos_eos_open_with_eos_and_use_the_whole_window():
    layout = BlockLayout(8, EOS, None)  # add_bos_eos=false: a document starts after an EOS in the stream
    assert layout.room == 7
    placed = layout.place([1, 2, 3, 4, 5, 6, 7, 8], [9, 10])
    assert (placed.ids, placed.start, placed.stop) == ([EOS, 4, 5, 6, 7, 8, 9, 10], 6, 8)
