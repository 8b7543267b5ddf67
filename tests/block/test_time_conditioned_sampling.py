"""Time-conditioned block models in sampling (objectives/block_diffusion.py: condition_at): a sampling pass over
[clean prefix, current block] conditions the block on its t and the prefix on t = 0, as the training forward's
x_0 stream, so the exact KV cache stays exact."""

import pytest
import torch

from dlm.cache.block import BlockCache
from tests.block.helpers import tiny_block_model, tokens, with_random_conditioning
from tests.block.test_sampling import Recorder, sample

TIMED = "objective.time_conditioning=true"


def timed_model():
    """A tiny time-conditioned block model (float32: the time embedding computes in float32) in which t matters."""
    return with_random_conditioning(tiny_block_model(4, TIMED, dtype=torch.float32))


def test_a_sampling_pass_conditions_the_current_block_on_t_and_the_clean_prefix_on_0():
    model = timed_model()
    x = tokens(2, length=12)
    t = torch.tensor([0.3, 0.8])
    per_token = torch.cat([torch.zeros(2, 8), t[:, None].expand(2, 4)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model.logits(x, t), model.logits(x, per_token), rtol=0, atol=0)
        torch.testing.assert_close(model.logits(x), model.logits(x, torch.zeros(2, 12)), rtol=0, atol=0)
        assert not torch.allclose(model.logits(x, t), model.logits(x, t[:, None].expand(2, 12)))


@pytest.mark.parametrize("inner", ["ancestral", "confidence", "first_hitting"])  # first hitting: per-row t
def test_a_time_conditioned_model_samples_the_same_tokens_with_and_without_the_cache(inner):
    model = timed_model()
    seeds = [0, 1, 2, 3]
    cached = sample(model, seeds, inner=inner)
    assert torch.equal(cached, sample(model, seeds, inner=inner, kv_cache=False))
    assert not (cached == model.objective.mask_id).any()


def test_every_stored_key_and_value_of_a_time_conditioned_model_is_the_clean_stream_at_t_0():
    model, cache = timed_model(), BlockCache()
    x = sample(model, [5, 6], eos_id=-1, cache=cache)
    recorder = Recorder()
    with torch.no_grad():
        model.forward_positions(x, torch.zeros(2, 16), kv=recorder)  # the x_0 stream: every token at t = 0
    for layer in recorder.keys:
        keys, values = cache.store.read(layer, 12)
        torch.testing.assert_close(keys, recorder.keys[layer][:, :, :12], rtol=0, atol=1e-5)
        torch.testing.assert_close(values, recorder.values[layer][:, :, :12], rtol=0, atol=1e-5)


def test_a_cached_call_on_the_current_block_equals_the_uncached_pass_over_the_window():
    """The prefix committed by its clean pass (t = 0) and read from the cache gives the current block the same
    prediction at its t as recomputing the window, in which the prefix is conditioned on t = 0."""
    model, cache = timed_model(), BlockCache()
    x = tokens(2, length=12)
    xt = x.clone()
    xt[:, 9:11] = model.objective.mask_id
    t = torch.tensor([0.4, 0.9])
    with torch.no_grad():
        model(x[:, :8], None, cache=cache)  # clean: blocks 0 and 1 committed
        cached = model(xt, t, cache=cache).log_probs[:, 8:]
        uncached = model(xt, t).log_probs[:, 8:]
    assert bool(cache.store.valid[:, :8].all())
    torch.testing.assert_close(cached, uncached, rtol=0, atol=1e-5)
