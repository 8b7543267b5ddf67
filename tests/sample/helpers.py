"""Shared fixtures of the sampler tests: the toy distributions they use (the oracles and laws are public in
dlm.testing, re-exported here for the tests)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dlm.process import Absorbing, Linear, LogLinear, Uniform
from dlm.sample.exact import all_states
from dlm.testing import Tabulated, ToyDistribution, empirical_law, fitted_order, mc_floor, mc_threshold

__all__ = ["BOS", "PROCESSES", "TOY", "Tabulated", "ToyDistribution", "causal_oracle", "empirical_law",
           "fitted_order", "fs1_masked", "fs1_toy", "mc_floor", "mc_threshold", "uniform_order_toy"]

TOY = ToyDistribution(length=3, vocab=3, seed=1)  # non-factorized p(x0) over 27 sequences
PROCESSES = {"absorbing": lambda: Absorbing(3), "uniform": lambda: Uniform(3)}


BOS = 3  # the autoregressive toy's vocabulary: the 3 toy tokens and BOS


def causal_oracle(xt: Tensor, t) -> Tensor:
    """Exact next-token log-probs of TOY: row j of (B, l, 4) is log p(x^{j+1} | x^1..x^j) after BOS at 0."""
    assert t is None
    out = torch.full((*xt.shape, 4), float("-inf"), dtype=torch.float64)
    for j in range(min(xt.shape[1], TOY.length)):
        agree = (TOY.states[None, :, :j] == xt[:, None, 1:j + 1]).all(-1)  # (B, 27): consistent with the context
        weight = TOY.probs[None] * agree
        following = torch.stack([(weight * (TOY.states[:, j] == v)).sum(-1) for v in range(3)], -1)
        out[:, j, :3] = torch.log(following / following.sum(-1, keepdim=True))
    return out


def fs1_toy() -> ToyDistribution:
    """ALGORITHMS §5.2 FS-1: L=2, K=3, p = default_rng(1).dirichlet(2 * ones(9))."""
    toy = ToyDistribution(length=2, vocab=3)
    toy.probs = torch.tensor(np.random.default_rng(1).dirichlet(np.full(9, 2.0)))
    return toy


def fs1_masked():
    """(toy, process, target p_delta over the 16 states) of FS-1: alpha_t = 1 - t, delta = 0.1."""
    toy, process = fs1_toy(), Absorbing(3, LogLinear(eps=0.0))
    states = all_states(process.width, 2)
    return toy, process, toy.marginal_t(process, states, torch.full((len(states),), 0.1, dtype=torch.float64))


def uniform_order_toy():
    """ALGORITHMS §5.2 uniform toy: L=2, K=3, beta=1 over T=3 (sigma(t) = 3t), from the exact p_1 to p_0."""
    toy, process = fs1_toy(), Uniform(3, Linear(sigma_min=0.0, sigma_max=3.0))
    states = all_states(process.width, 2)
    start = toy.marginal_t(process, states, torch.ones(len(states), dtype=torch.float64))
    return toy, process, start
