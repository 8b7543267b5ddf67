"""Block diffusion sampling over the exact block KV cache (sample/block.py, cache/block.py): the cache changes no
token, every stored key/value is the training forward's clean stream, rows stop independently at EOS and a row's
tokens do not depend on its batch."""

import pytest
import torch

from dlm.cache.block import BlockCache
from dlm.registry import ConfigError
from dlm.sample import generate
from tests.block.helpers import recorded_widths, tiny_block_model

EOS = 2


def sample(model, seeds, *, kv_cache=True, inner=None, eos_id=EOS, cache=None, length=16, steps=4):
    sampler = model.objective.sampler(inner, eos_id=eos_id, kv_cache=kv_cache)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    with torch.no_grad():
        return generate(model, model.process, sampler, steps=steps, shape=(len(seeds), length), generator=generators,
                        cache=cache)


def stops(x):
    """Per row, the column of its first EOS (the length when none)."""
    columns = torch.arange(x.shape[1])
    return torch.where(x == EOS, columns, x.shape[1]).min(-1).values.tolist()


@pytest.mark.parametrize("inner", ["ancestral", "confidence"])
@pytest.mark.parametrize("seeds", [[0], [0, 1, 2, 3]])
def test_cached_sampling_equals_recomputing_the_prefix_at_every_step(inner, seeds):
    model = tiny_block_model(4)
    cached = sample(model, seeds, inner=inner)
    uncached = sample(model, seeds, inner=inner, kv_cache=False)
    assert torch.equal(cached, uncached)
    assert not (cached == model.objective.mask_id).any()
    if len(seeds) > 1:
        assert len(set(stops(cached))) >= 3  # rows stop at different points (a meaningful batch)


def test_rows_stop_at_their_first_eos_and_are_padded_after_it():
    model = tiny_block_model(4)
    x = sample(model, [0, 1, 2, 3])
    for row, stop in zip(x, stops(x)):
        assert (row[stop + 1:] == EOS).all()  # pad_id defaults to eos_id
    assert min(stops(x)) < 12  # someone stopped blocks before the end


def test_a_rows_tokens_do_not_depend_on_its_batch():
    model = tiny_block_model(4)
    batch = sample(model, [0, 1, 2, 3])
    for row, seed in enumerate([0, 1, 2, 3]):
        assert torch.equal(batch[row:row + 1], sample(model, [seed]))


class Recorder:
    """A KV hook that keeps every layer's keys/values of a plain forward."""

    def __init__(self):
        self.keys, self.values = {}, {}

    def update(self, layer, k, v, positions):
        self.keys[layer], self.values[layer] = k, v
        return k, v


def test_every_stored_key_and_value_is_the_clean_block_causal_forward():
    """The cache after sampling holds, for every committed position, the K/V that the clean sequence gives under
    the block-causal pattern: the x_0 stream of the training forward."""
    model, cache = tiny_block_model(4), BlockCache()
    x = sample(model, [5, 6], eos_id=-1, cache=cache)
    recorder = Recorder()
    with torch.no_grad():
        model.forward_positions(x, None, kv=recorder)
    committed = 12  # every block but the last, which nothing reads
    assert bool(cache.store.valid[:, :committed].all()) and not bool(cache.store.valid[:, committed:16].any())
    for layer in recorder.keys:
        keys, values = cache.store.read(layer, committed)
        torch.testing.assert_close(keys, recorder.keys[layer][:, :, :committed], rtol=0, atol=1e-12)
        torch.testing.assert_close(values, recorder.values[layer][:, :, :committed], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, options, message", [
    ("autoregressive", {}, "takes process=None"),
    ("ancestral_cache", {}, "subsets of rows"),
    (None, {"block_size": 8}, "decodes in blocks of 4"),
])
def test_a_sampler_that_cannot_run_on_a_block_model_is_a_one_line_error(name, options, message):
    model = tiny_block_model(4)
    with pytest.raises(ConfigError, match=message) as info:
        model.objective.sampler(name, **options)
    assert "\n" not in str(info.value)


def test_each_cached_call_runs_the_backbone_on_one_block_only():
    model = tiny_block_model(4)
    widths = recorded_widths(model)
    sample(model, [0], eos_id=-1)
    cached = list(widths)
    widths.clear()
    sample(model, [0], eos_id=-1, kv_cache=False)
    assert set(cached) == {4} and sorted(set(widths)) == [4, 8, 12, 16]
    assert len(cached) == len(widths) + 3  # the same denoiser calls, + one clean run per block but the last


def test_another_cache_policy_is_a_one_line_error():
    model = tiny_block_model(4)
    with pytest.raises(ConfigError, match="keeps its own exact cache") as info:
        sample(model, [0], cache="prefix")
    assert "\n" not in str(info.value)


def test_model_generate_with_a_sampler_name_decodes_in_blocks():
    """DiffusionLM.generate builds a named sampler through the objective, as the command line does: on a block
    model "ancestral" is the block sampler with ancestral steps inside (not a whole-sequence ancestral pass)."""
    model = tiny_block_model(4)
    with torch.no_grad():
        by_name = model.generate("ancestral", steps=4, shape=(2, 16), generator=torch.Generator().manual_seed(0))
        blocks = generate(model, model.process, model.objective.sampler("ancestral"), steps=4, shape=(2, 16),
                          generator=torch.Generator().manual_seed(0))
    assert torch.equal(by_name, blocks)
