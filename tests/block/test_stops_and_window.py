"""The block sampler's tail-entropy stop and its sliding window (sample/block.py): a row whose last tokens have a
low-entropy histogram stops and that tail becomes padding; a window of the last W tokens lets a model generate past
its max_len, and the cached window equals recomputing the window at every step."""

import math

import pytest
import torch

from dlm.process import Absorbing
from dlm.registry import ConfigError
from dlm.sample import NFECounter, generate, get_sampler
from dlm.sample.block import tail_entropy
from tests.block.helpers import confident_block_model, recorded_widths

PAD = 3


def test_tail_entropy_is_the_entropy_of_the_token_counts():
    tail = torch.tensor([[1, 1, 1, 1], [0, 5, 0, 5], [0, 1, 2, 3], [7, 7, 7, 2]])
    expected = [0.0, math.log(2), math.log(4), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))]
    torch.testing.assert_close(tail_entropy(tail), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)


def repetitive_after_zero(xt, t):
    """x_theta over 3 tokens (+ mask = 3): a point mass on token 1 in rows whose first token is 0, uniform elsewhere."""
    out = torch.full((*xt.shape, 4), float("-inf"), dtype=torch.float64)
    out[..., :3] = math.log(1 / 3)
    repeat = xt[:, 0] == 0
    out[repeat, :, :3] = torch.tensor([float("-inf"), 0.0, float("-inf")], dtype=torch.float64)
    return out


def test_a_row_with_a_degenerate_tail_stops_and_its_tail_is_padding():
    """Row 0 (prompt 0) repeats token 1: after block 3 (12 tokens > tail 8) its tail's entropy is 0, so it stops and
    its last 8 tokens become padding; row 1 (prompt 2) draws uniformly and goes on to the end."""
    sampler = get_sampler("block:tail_entropy=0.3,tail_length=8,pad_id=3", block_size=4)
    prompt = torch.tensor([[0], [2]])
    counter = NFECounter(repetitive_after_zero)
    x = generate(counter, Absorbing(3), sampler, steps=4, shape=(2, 16), prompt=prompt,
                 generator=[torch.Generator().manual_seed(s) for s in (0, 1)])
    assert x[0].tolist() == [0, 1, 1, 1] + [PAD] * 12
    assert not (x[1] == PAD).any() and tail_entropy(x[1:, -8:]) > 0.3
    alone = generate(repetitive_after_zero, Absorbing(3), sampler, steps=4, shape=(1, 16), prompt=prompt[1:],
                     generator=[torch.Generator().manual_seed(1)])
    assert torch.equal(alone, x[1:])  # per row, not pooled over the batch as in the reference


def test_without_tail_entropy_nothing_stops():
    sampler = get_sampler("block", block_size=4)
    x = generate(repetitive_after_zero, Absorbing(3), sampler, steps=4, shape=(1, 16), prompt=torch.tensor([[0]]),
                 generator=torch.Generator().manual_seed(0))
    assert x[0].tolist() == [0] + [1] * 15


@pytest.mark.parametrize("options, message", [("tail_entropy=0.5", "padding id"), ("window=6", "multiple of")])
def test_bad_stop_or_window_options_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message) as info:
        get_sampler(f"block:{options}", block_size=4)
    assert "\n" not in str(info.value)


def run(model, seeds, length, *, window=0, kv_cache=True, inner="ancestral", eos_id=-1):
    sampler = model.objective.sampler(inner, window=window, kv_cache=kv_cache, eos_id=eos_id)
    with torch.no_grad():
        return generate(model, model.process, sampler, steps=4, shape=(len(seeds), length),
                        generator=[torch.Generator().manual_seed(s) for s in seeds])


@pytest.mark.parametrize("window", [16, 32])
def test_a_window_as_long_as_the_text_changes_nothing(window):
    model = confident_block_model(4)
    assert torch.equal(run(model, [0, 1], 16, window=window), run(model, [0, 1], 16))


@pytest.mark.parametrize("inner", ["ancestral", "confidence:threshold=0.4"])
@pytest.mark.parametrize("seeds", [[0], [0, 1, 2, 3]])
def test_the_cached_sliding_window_equals_recomputing_the_window(inner, seeds):
    """64 tokens from a model with max_len 32 through a window of 4 (each block alone), 8 or 32 tokens: the cached
    sampler (the window's clean prefix recomputed once when it moves, then read) draws what recomputing the window
    at every step draws."""
    model = confident_block_model(4)
    for window in (4, 8, 32):
        cached = run(model, seeds, 64, window=window, inner=inner, eos_id=2)
        assert torch.equal(cached, run(model, seeds, 64, window=window, inner=inner, eos_id=2, kv_cache=False))
        assert not (cached == model.objective.mask_id).any()
    assert not torch.equal(run(model, seeds, 32, window=8), run(model, seeds, 32))  # the window does cut context


def test_each_cached_call_runs_on_one_block_or_one_window():
    model = confident_block_model(4)
    widths = recorded_widths(model)
    run(model, [0], 32, window=16)
    # blocks 0-2 (the window is the text): 4 steps + a clean pass; block 3: 4 steps (its clean pass is skipped: the
    # window moves); blocks 4-7: the moved window's 12-token clean prefix, then 4 steps on the block
    assert widths == [4] * 15 + [4] * 4 + ([12] + [4] * 4) * 4


@pytest.mark.parametrize("kv_cache", [True, False])
def test_past_max_len_without_a_window_is_a_one_line_error(kv_cache):
    model = confident_block_model(4)  # max_len 32
    with pytest.raises(ConfigError, match="max_len=32") as info:
        run(model, [0], 40, kv_cache=kv_cache)
    assert "\n" not in str(info.value)
