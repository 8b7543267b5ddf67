"""ancestral_cache: the samples of ancestral for the same noise, with fewer denoiser evaluations."""

import pytest
import torch

from dlm.process import Absorbing, Uniform
from dlm.registry import ConfigError
from dlm.sample import NFECounter, generate
from tests.sample.helpers import TOY


@pytest.mark.parametrize("batch, steps", [(1, 64), (256, 64), (256, 8)])
def test_cache_matches_ancestral_with_fewer_evaluations(batch, steps):
    """The absorbing oracle p(x0 | unmasked tokens) ignores t, so reusing it when x_t did not change is exact."""
    process = Absorbing(3)
    counters, outputs = {}, {}
    for name in ("ancestral", "ancestral_cache"):
        counters[name] = NFECounter(TOY.denoiser(process))
        outputs[name] = generate(counters[name], process, name, steps=steps, shape=(batch, 3),
                                 generator=torch.Generator().manual_seed(0))
    assert torch.equal(outputs["ancestral"], outputs["ancestral_cache"])
    plain, cached = counters["ancestral"], counters["ancestral_cache"]
    assert plain.calls in (steps, steps + 1)  # + noise removal when a mask is left at eps
    assert cached.rows < plain.rows
    if batch == 1:  # one evaluation at the start and one after each step that unmasked something: at most L + 1
        assert cached.calls <= 3 + 1 < plain.calls


def test_cache_refuses_uniform():
    """The uniform x_theta depends on t, so a reused prediction would be stale: a clear error, not a biased sample."""
    with pytest.raises(ConfigError, match="supports processes"):
        generate(TOY.denoiser(Uniform(3)), Uniform(3), "ancestral_cache", steps=4, shape=(2, 3))
