"""Nucleus (top-p) sampling in the block sampler: top-p reshapes x_theta at the current block's positions only (the
only ones drawn), and nucleus="strict" is the BD3LM reference's set (the largest prefix of mass <= top_p, at least
the top token), against the default "reach" (the smallest prefix reaching top_p)."""

import pytest
import torch

from dlm.process import Absorbing
from dlm.sample import generate, get_sampler
from dlm.utils.categorical import filtered_probs

LAW = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)


@pytest.mark.parametrize("top_p, nucleus, kept", [
    (0.9, "reach", [0.5, 0.3, 0.2]), (0.9, "strict", [0.625, 0.375, 0.0]),
    (0.7, "reach", [0.625, 0.375, 0.0]), (0.7, "strict", [1.0, 0.0, 0.0]),
    (0.4, "reach", [1.0, 0.0, 0.0]), (0.4, "strict", [1.0, 0.0, 0.0]),  # the top token always stays
])
def test_the_two_nucleus_sets(top_p, nucleus, kept):
    probs = filtered_probs(LAW.log()[[2, 0, 1]], top_p=top_p, nucleus=nucleus)  # any order of the vocabulary
    expected = torch.tensor(kept, dtype=torch.float64)[[2, 0, 1]]
    torch.testing.assert_close(probs / probs.sum(), expected, rtol=0, atol=1e-12)  # filtered, not renormalized


def constant(xt, t):
    """x_theta = LAW at every position (the mask column -inf): (B, l, 4) log-probs."""
    out = torch.full((*xt.shape, 4), float("-inf"), dtype=torch.float64)
    out[..., :3] = LAW.double().log()
    return out


@pytest.mark.parametrize("inner", ["ancestral", "first_hitting", "confidence:threshold=0.0"])
@pytest.mark.parametrize("nucleus", ["reach", "strict"])
def test_the_block_sampler_draws_each_block_from_the_nucleus_of_its_law(inner, nucleus):
    sampler = get_sampler(f"block:inner={inner},top_p=0.9,nucleus={nucleus}", block_size=2)
    assert sampler.inner_sampler.nucleus == nucleus and sampler.inner_sampler.top_p == 0.9
    n = 4000
    x = generate(constant, Absorbing(3), sampler, steps=2, shape=(n, 4), generator=torch.Generator().manual_seed(0))
    frequency = torch.bincount(x.flatten(), minlength=4).double() / x.numel()
    expected = filtered_probs(LAW.log(), top_p=0.9, nucleus=nucleus)
    expected = expected / expected.sum()
    assert float(frequency[3]) == 0.0  # no mask left
    assert float((frequency[:3] - expected).abs().max()) < 4 * (0.25 / x.numel()) ** 0.5  # 4 sigma
