"""Adaptive decoding inside the block sampler (sample/block.py): confidence with a threshold or a factor and the
entropy-bounded sampler run each block until it has no mask, over the exact block KV cache; rows progress
independently; the options read as options.py writes them."""

import pytest
import torch

from dlm.registry import ConfigError
from dlm.sample import NFECounter, generate
from tests.block.helpers import confident_block_model

EOS = 2
ADAPTIVE = ["confidence:threshold=0.4", "confidence:factor=2.5", "entropy_bounded:gamma=2.0", "first_hitting"]


def run(model, spec, seeds, *, steps=4, eos_id=EOS, **options):
    """-> (tokens (B, 16), denoiser calls) of the block sampler with `spec` inside, one generator per row."""
    sampler = model.objective.sampler(spec, eos_id=eos_id, **options)
    counter = NFECounter(model)
    with torch.no_grad():
        x = generate(counter, model.process, sampler, steps=steps, shape=(len(seeds), 16),
                     generator=[torch.Generator().manual_seed(s) for s in seeds])
    return x, counter.calls


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_threshold_one_is_the_one_token_per_step_confidence_sampler(temperature):
    model = confident_block_model(4)
    fixed, _ = run(model, "confidence", [0, 1, 2, 3], temperature=temperature)  # 4 steps for 4 tokens per block
    adaptive, _ = run(model, "confidence:threshold=1.0", [0, 1, 2, 3], steps=1, temperature=temperature)
    assert torch.equal(adaptive, fixed)


def test_threshold_zero_decodes_each_block_in_one_step():
    model = confident_block_model(4)
    x, calls = run(model, "confidence:threshold=0.0", [0, 1, 2, 3], steps=8, eos_id=-1)
    assert calls == 4 + 3  # one call per block, + the clean run of every block but the last
    assert torch.equal(x, run(model, "confidence", [0, 1, 2, 3], steps=1, eos_id=-1)[0])  # the whole block at once


@pytest.mark.parametrize("spec", ADAPTIVE)
def test_adaptive_blocks_run_until_decoded_whatever_steps_says(spec):
    model = confident_block_model(4)
    x, calls = run(model, spec, [0], steps=1, eos_id=-1)
    assert not (x == model.objective.mask_id).any()
    assert torch.equal(x, run(model, spec, [0], steps=16, eos_id=-1)[0])
    if spec == "first_hitting":
        assert calls == 16 + 3  # one call per token, + the clean run of every block but the last
    else:
        assert 7 < calls < 16 + 3  # more than one call per block (the rule needed them), fewer than one per token


@pytest.mark.parametrize("spec", ADAPTIVE)
@pytest.mark.parametrize("seeds", [[0], [0, 1, 2, 3]])
def test_cached_adaptive_decoding_equals_recomputing_the_prefix(spec, seeds):
    model = confident_block_model(4)
    cached, _ = run(model, spec, seeds)
    uncached, _ = run(model, spec, seeds, kv_cache=False)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("spec", ADAPTIVE)
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_rows_progress_independently_and_do_not_depend_on_their_batch(spec, temperature):
    model = confident_block_model(4)
    seeds = [0, 1, 2, 3]
    batch, _ = run(model, spec, seeds, temperature=temperature)
    alone = [run(model, spec, [seed], temperature=temperature) for seed in seeds]
    for row, (x, _) in enumerate(alone):
        assert torch.equal(batch[row:row + 1], x)
    if spec.endswith("threshold=0.4") and temperature == 1.0:
        assert len({calls for _, calls in alone}) > 1  # the rows needed different numbers of steps


def test_block_options_read_as_options_py_writes_them():
    model = confident_block_model(4)
    spelled = ["block:inner=confidence,threshold=0.4,eos_id=2", "confidence:threshold=0.4"]
    samplers = [model.objective.sampler(spelled[0]), model.objective.sampler(spelled[1], eos_id=EOS),
                model.objective.sampler("confidence", threshold=0.4, eos_id=EOS)]
    assert {(s.inner_sampler.name, s.inner_sampler.threshold, s.eos_id) for s in samplers} == {("confidence", 0.4, 2)}
    outputs = []
    for sampler in samplers:
        with torch.no_grad():
            outputs.append(generate(model, model.process, sampler, steps=4, shape=(2, 16),
                                    generator=[torch.Generator().manual_seed(s) for s in (5, 6)]))
    assert all(torch.equal(x, outputs[0]) for x in outputs)


def test_a_misspelled_inner_option_is_a_one_line_error():
    model = confident_block_model(4)
    with pytest.raises(ConfigError, match="sampler 'confidence' has no option 'thresold'") as info:
        model.objective.sampler("block:inner=confidence,thresold=0.4")
    assert "\n" not in str(info.value)
