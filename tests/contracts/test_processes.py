"""Contract for every registered process: MC marginals match alpha, posteriors normalize and obey Bayes,
t -> 1 gives the prior."""

import itertools

import pytest
import torch

from dlm.process import LogLinear
from dlm.registry import PROCESSES

V = 4


@pytest.fixture(params=sorted(PROCESSES))
def process(request):
    return PROCESSES[request.param](V, LogLinear(eps=0.0))


def test_corrupt_marginals_match_alpha(process):
    n = 200_000
    x0 = torch.full((n, 1), 2)
    gen = torch.Generator().manual_seed(0)
    for t in (0.2, 0.5, 0.9):
        xt = process.corrupt(x0, torch.full((n,), t), generator=gen)
        freq = torch.bincount(xt.flatten(), minlength=process.width).double() / n
        expected = process.marginal_at(torch.nn.functional.one_hot(x0[:1], process.width).double(),
                                       torch.tensor([t], dtype=torch.float64))[0, 0]
        assert torch.all((freq - expected).abs() < 5 * (expected * (1 - expected) / n).sqrt() + 1e-9)


def test_t_equal_one_gives_the_prior(process):
    n = 100_000
    gen = torch.Generator().manual_seed(1)
    xt = process.corrupt(torch.zeros(n, 1, dtype=torch.long), torch.ones(n), generator=gen)
    prior = process.prior((n, 1), generator=gen)
    f_xt = torch.bincount(xt.flatten(), minlength=process.width).double() / n
    f_prior = torch.bincount(prior.flatten(), minlength=process.width).double() / n
    assert (f_xt - f_prior).abs().max() < 0.01


def test_posterior_rows_sum_to_one_and_obey_bayes(process):
    """For a clean x0, q(x_s | x_t, x0) = q(x_t | x_s) q(x_s | x0) / q(x_t | x0), checked by enumeration."""
    t, s = torch.tensor([0.7], dtype=torch.float64), torch.tensor([0.3], dtype=torch.float64)
    eye = torch.eye(process.width, dtype=torch.float64)
    for x0, xt in itertools.product(range(V), range(process.width)):
        q_t = process.marginal_at(eye[x0].view(1, 1, -1), t)[0, 0]
        if q_t[xt] == 0:
            continue
        post = process.posterior(torch.tensor([[xt]]), eye[x0].view(1, 1, -1), t, s)[0, 0]
        q_s = process.marginal_at(eye[x0].view(1, 1, -1), s)[0, 0]
        step = process.transition(torch.tensor([[xt]]), t, s)[0, 0]
        torch.testing.assert_close(process.likelihood(torch.tensor([[xt]]), t)[0, 0, x0], q_t[xt])
        torch.testing.assert_close(post, step * q_s / q_t[xt], rtol=1e-10, atol=1e-12)
        assert abs(float(post.sum()) - 1) < 1e-12


def test_chapman_kolmogorov(process):
    """q_t = q_s composed with the transition s -> t: sum_j q_s(j | x0) q(x_t | x_s = j) = q_t(x_t | x0)."""
    t, s = torch.tensor([0.8], dtype=torch.float64), torch.tensor([0.35], dtype=torch.float64)
    x0 = torch.eye(process.width, dtype=torch.float64)[1].view(1, 1, -1)
    states = torch.arange(process.width).view(1, -1)
    composed = (process.transition(states, t, s) * process.marginal_at(x0, s)).sum(-1)[0]  # over x_s = j
    torch.testing.assert_close(composed, process.marginal_at(x0, t)[0, 0], rtol=1e-10, atol=1e-12)
