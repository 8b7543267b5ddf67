"""Shared fixtures of the sampler tests: the toy distributions they use (the oracles and laws are public in
dlm.testing, re-exported here for the tests)."""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.process import Absorbing, Uniform
from dlm.testing import Tabulated, ToyDistribution, empirical_law, fitted_order, mc_floor, mc_threshold
from dlm.testing.orders import fs1_masked, fs1_toy, uniform_order_toy

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
