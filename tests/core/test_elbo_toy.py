"""The ELBO of an exact denoiser on an enumerable toy distribution: equal to / bounding the exact NLL."""

import pytest
import torch

from dlm.eval.likelihood import elbo_samples
from dlm.process import Absorbing, LogLinear, Uniform
from dlm.testing import ToyDistribution

TOY = ToyDistribution(length=3, vocab=3, seed=1)
N_T = 4000


def _estimate(denoiser, process, seed=0):
    x0 = TOY.states  # all 27 sequences
    samples = elbo_samples(denoiser, process, x0, n_t=N_T, generator=torch.Generator().manual_seed(seed))
    return samples.mean(0), samples.std(0) / N_T**0.5


def _expected(values):
    """Average over the data distribution: E_{x0 ~ p}[values]."""
    return float((TOY.probs * values).sum())


def test_absorbing_elbo_equals_exact_nll_with_oracle():
    process = Absorbing(3, LogLinear(eps=0.0))
    mean, se = _estimate(TOY.denoiser(process), process)
    nll = TOY.nll(TOY.states)
    # exact for every sequence, within Monte Carlo error (stratified t is low-variance; 4 se is generous)
    assert torch.all((mean - nll).abs() < 4 * se + 1e-3), (mean - nll, se)


def test_uniform_elbo_bounds_exact_nll_and_is_close():
    process = Uniform(3, LogLinear(eps=1e-3))
    mean, se = _estimate(TOY.denoiser(process), process)
    gap = _expected(mean) - _expected(TOY.nll(TOY.states))
    pooled_se = float(torch.sqrt((TOY.probs**2 * se**2).sum()))
    assert gap > -4 * pooled_se
    assert gap < 0.02 * _expected(TOY.nll(TOY.states)) + 4 * pooled_se


@pytest.mark.parametrize("process", [Absorbing(3, LogLinear(eps=0.0)), Uniform(3, LogLinear(eps=1e-3))],
                         ids=["absorbing", "uniform"])
def test_score_entropy_bound_of_exact_score_matches_nll(process):
    mean, se = _estimate(TOY.score_denoiser(process), process)
    nll = TOY.nll(TOY.states)
    pooled_se = float(torch.sqrt((TOY.probs**2 * se**2).sum()))
    gap = _expected(mean) - _expected(nll)
    assert abs(gap) < 4 * pooled_se + 0.02 * _expected(nll), (gap, pooled_se)


@pytest.mark.parametrize("process", [Absorbing(3, LogLinear(eps=0.0)), Uniform(3, LogLinear(eps=1e-3))],
                         ids=["absorbing", "uniform"])
def test_poor_denoiser_gives_strictly_larger_bound(process):
    exact = TOY.denoiser(process)

    def blurred(xt, t):  # mix the exact posterior with uniform: a strictly worse denoiser
        probs = 0.6 * exact(xt, t).exp() + 0.4 / 3 * (torch.arange(process.width) < 3).double()
        return torch.log(probs)

    # common random numbers: the same t and x_t for both denoisers, so the paired difference has a small error
    x0, gen = TOY.states, lambda: torch.Generator().manual_seed(3)
    diff = (elbo_samples(blurred, process, x0, n_t=N_T, generator=gen())
            - elbo_samples(exact, process, x0, n_t=N_T, generator=gen()))
    mean_diff = _expected(diff.mean(0))
    pooled = float(torch.sqrt((TOY.probs**2 * diff.var(0) / N_T).sum()))
    assert mean_diff > 4 * pooled, (mean_diff, pooled)
