"""conditional_elbo on the exact toy: equals -log p(target | context) for absorbing (mean and score
parameterization), bounds it for uniform, and reduces to elbo when everything is the target."""

import pytest
import torch

from dlm.eval.likelihood import conditional_elbo, conditional_elbo_samples, elbo_samples, masked_conditional_nll
from dlm.process import Absorbing, LogLinear, Uniform
from dlm.registry import ConfigError
from dlm.testing import ToyDistribution

TOY = ToyDistribution(length=3, vocab=3, seed=1)
N_T = 2000
TARGETS = {"suffix": [False, True, True], "infill": [True, False, True]}


def _exact_conditional(target: list[bool]) -> torch.Tensor:
    """-log p(x[target] | x[~target]) for every state: -log p(x) + log sum_{x' agreeing on the context} p(x')."""
    context = ~torch.tensor(target)
    same = (TOY.states[:, None, context] == TOY.states[None, :, context]).all(-1)  # (S, S)
    return TOY.nll(TOY.states) + torch.log((same.double() * TOY.probs[None]).sum(-1))


def _estimate(denoiser, process, target, n_t=N_T):
    samples = conditional_elbo_samples(denoiser, process, TOY.states, torch.tensor([target]), n_t=n_t,
                                       generator=torch.Generator().manual_seed(0))
    return samples.mean(0), samples.std(0) / n_t**0.5


def _pooled(values):
    return float((TOY.probs * values).sum())


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
def test_absorbing_conditional_elbo_is_exact_with_the_oracle(target):
    process = Absorbing(3, LogLinear(eps=0.0))
    mean, se = _estimate(TOY.denoiser(process), process, target)
    exact = _exact_conditional(target)
    assert torch.all((mean - exact).abs() < 4 * se + 1e-3), (mean - exact, se)  # every state


def test_absorbing_conditional_score_entropy_bound_is_exact_with_the_oracle():
    process, target = Absorbing(3, LogLinear(eps=0.0)), TARGETS["suffix"]
    mean, se = _estimate(TOY.score_denoiser(process), process, target, n_t=300)  # the score oracle is slow
    pooled_se = float(torch.sqrt((TOY.probs**2 * se**2).sum()))
    exact = _pooled(_exact_conditional(target))
    assert abs(_pooled(mean) - exact) < 4 * pooled_se + 0.01 * exact, (_pooled(mean), exact, pooled_se)


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
def test_uniform_conditional_elbo_is_a_bound(target):
    process = Uniform(3, LogLinear(eps=1e-3))
    mean, se = _estimate(TOY.denoiser(process), process, target)
    pooled_se = float(torch.sqrt((TOY.probs**2 * se**2).sum()))
    gap = _pooled(mean) - _pooled(_exact_conditional(target))
    assert gap > -4 * pooled_se, (gap, pooled_se)


def test_whole_sequence_target_is_the_elbo():
    process = Absorbing(3, LogLinear(eps=0.0))
    x0, everything = TOY.states[:5], torch.ones(1, 3, dtype=torch.bool)
    conditional = conditional_elbo_samples(TOY.denoiser(process), process, x0, everything, n_t=7,
                                           generator=torch.Generator().manual_seed(4))
    joint = elbo_samples(TOY.denoiser(process), process, x0, n_t=7, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(conditional, joint)
    mean = conditional_elbo(TOY.denoiser(process), process, x0, everything, n_t=7,
                            generator=torch.Generator().manual_seed(4))
    assert torch.allclose(mean, joint.mean(0))


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
def test_masked_conditional_nll_is_the_exact_conditional_with_the_oracle(target):
    """The enumerated bound is tight for the exact (time-independent) absorbing denoiser: -log p(c | y) exactly."""
    process = Absorbing(3, LogLinear(eps=0.0))
    exact = masked_conditional_nll(TOY.denoiser(process), process, TOY.states, torch.tensor(target))
    assert torch.allclose(exact, _exact_conditional(target), atol=1e-9)


def test_masked_conditional_nll_is_the_limit_of_the_monte_carlo_bound():
    """For a wrong, t-independent denoiser the bound is loose, and the enumeration is conditional_elbo's mean."""
    process, target = Absorbing(3, LogLinear(eps=0.0)), torch.tensor([True, False, True])
    table = torch.randn(4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)  # (input, width)

    def crude(xt, t):  # log-probs from each position's own token and the next one's (not the posterior)
        return (table[xt] + table[xt.roll(-1, 1)]).log_softmax(-1)

    exact = masked_conditional_nll(crude, process, TOY.states, target)
    mean, se = _estimate(crude, process, target.tolist(), n_t=4000)
    assert torch.all((mean - exact).abs() < 4 * se + 1e-3), (mean - exact, se)
    assert _pooled(exact) > _pooled(_exact_conditional(target.tolist())) + 0.1  # cross-entropy > entropy


def test_masked_conditional_nll_refuses_a_score_denoiser():
    process = Absorbing(3, LogLinear(eps=0.0))
    with pytest.raises(ConfigError, match="mean-parameterized"):
        masked_conditional_nll(TOY.score_denoiser(process), process, TOY.states[:2], torch.tensor([True, False, False]))


def test_masked_conditional_nll_runs_rows_that_agree_outside_the_mask_once():
    process, target = Absorbing(3, LogLinear(eps=0.0)), torch.tensor([False, False, True])
    oracle, seen = TOY.denoiser(process), []

    def counting(xt, t):
        seen.append(len(xt))
        return oracle(xt, t)

    doubled = torch.cat([TOY.states, TOY.states])
    nll = masked_conditional_nll(counting, process, doubled, target)
    assert torch.allclose(nll, _exact_conditional(target.tolist()).repeat(2), atol=1e-9)
    assert seen == [len(TOY.states) // 3]  # one pattern; the 27 states masked at the last position are 9 rows
