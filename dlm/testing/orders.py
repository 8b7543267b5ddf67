"""The two toys on which a sampler's convergence order is read exactly (Ren et al., arXiv 2502.00234; docs/samplers.md
#convergence-orders-on-exact-toys): a smooth L=2, K=3 target, small enough that every sampler's law can be composed
over all states (dlm.sample.exact) with no Monte Carlo error.
"""

from __future__ import annotations

import numpy as np
import torch

from dlm.process import Absorbing, Linear, LogLinear, Uniform
from dlm.sample.exact import all_states
from dlm.testing.toy import ToyDistribution


def fs1_toy() -> ToyDistribution:
    """FS-1: L=2, K=3, p = default_rng(1).dirichlet(2 * ones(9)) over the 9 sequences."""
    toy = ToyDistribution(length=2, vocab=3)
    toy.probs = torch.tensor(np.random.default_rng(1).dirichlet(np.full(9, 2.0)))
    return toy


def fs1_masked():
    """(toy, process, target p_delta over the 16 states) of FS-1 under masking: alpha_t = 1 - t, delta = 0.1."""
    toy, process = fs1_toy(), Absorbing(3, LogLinear(eps=0.0))
    states = all_states(process.width, 2)
    return toy, process, toy.marginal_t(process, states, torch.full((len(states),), 0.1, dtype=torch.float64))


def uniform_order_toy():
    """(toy, process, exact p_1) of FS-1 under uniform noise: beta=1 over T=3 (sigma(t) = 3t), run from p_1 to p_0."""
    toy, process = fs1_toy(), Uniform(3, Linear(sigma_min=0.0, sigma_max=3.0))
    states = all_states(process.width, 2)
    start = toy.marginal_t(process, states, torch.ones(len(states), dtype=torch.float64))
    return toy, process, start
