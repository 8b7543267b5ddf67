"""Contract for every registered process: the continuous-time ELBO of a mean-parameterized denoiser bounds the
exact -log p(x0) of the toy distribution (dlm.testing.ToyDistribution), is tight with the exact oracle, and grows
for a worse denoiser. The bound is computed without Monte Carlo: every x_t is enumerated with its probability
q_t(x_t | x0), and t is integrated by the midpoint rule in u after t = u^3 (10 - 15 u + 6 u^2), flat at both ends,
which tames the log(t) / sqrt(t) edge of the weights of a hybrid mask + uniform process that makes Monte Carlo in t
heavy-tailed.
"""

from functools import cache

import pytest
import torch

from dlm.process import LogLinear
from dlm.registry import PROCESSES
from dlm.sample.exact import all_states
from dlm.testing import ToyDistribution

TOY = ToyDistribution(length=3, vocab=3, seed=1)
N_U = 200


def exact_elbo(denoiser, process) -> torch.Tensor:
    """(27,) the ELBO of every toy sequence, nats: int_0^1 sum_{x_t} q_t(x_t | x0) sum_l L_t^l dt + prior terms."""
    states = all_states(process.width, TOY.length)  # every x_t, (S, L)
    x0 = TOY.states.repeat_interleave(len(states), 0)  # (27 S, L): every (x0, x_t) pair
    xt = states.repeat(len(TOY.states), 1)
    total = torch.zeros(len(TOY.states), dtype=torch.float64)
    for i in range(N_U):
        u = (i + 0.5) / N_U
        t, jacobian = u**3 * (10 - 15 * u + 6 * u**2), 30 * u**2 * (1 - u) ** 2
        t_states = torch.full((len(states),), t, dtype=torch.float64)
        lik = process.likelihood(states, t_states)  # (S, L, N): q_t(x_t^l | x0^l = j)
        prob = lik[:, torch.arange(TOY.length), TOY.states].prod(-1).T  # (27, S): q_t(x_t | x0)
        log_probs = denoiser(states, t_states).repeat(len(TOY.states), 1, 1)
        integrand = process.elbo_integrand(log_probs, x0, xt, torch.full((len(x0),), t, dtype=torch.float64))
        total += jacobian / N_U * (prob * integrand.double().sum(-1).view(len(TOY.states), -1)).sum(-1)
    return total + process.prior_kl() * TOY.length


@cache
def bounds(name: str):
    """(exact oracle's ELBO, a blurred oracle's ELBO), both (27,), for the registered process `name`."""
    process = PROCESSES[name](TOY.vocab, LogLinear(eps=0.0))  # alpha_1 = 0: the chain ends at its prior
    exact = TOY.denoiser(process)
    clean = process.clean_mask(torch.empty(0)).double()

    def blurred(xt, t):  # mix the exact posterior with uniform over the clean tokens: a strictly worse denoiser
        return torch.log(0.6 * exact(xt, t).exp() + 0.4 * clean / clean.sum())

    return exact_elbo(exact, process), exact_elbo(blurred, process)


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_elbo_of_the_exact_oracle_bounds_the_nll_tightly(name):
    elbo, _ = bounds(name)
    nll = TOY.nll(TOY.states)
    assert torch.all(elbo > nll - 1e-4), (elbo - nll).min()  # a bound for every sequence
    gap = float((TOY.probs * (elbo - nll)).sum())
    assert gap < 1e-3, gap  # tight: equal up to the quadrature error (~3e-4 for the hybrid edge at 200 points)


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_a_worse_denoiser_has_a_larger_bound(name):
    """Larger on average over the data (not per sequence: blurring towards
    uniform raises the model's probability of rare sequences)."""
    elbo, worse = bounds(name)
    assert float((TOY.probs * (worse - elbo)).sum()) > 0.05
