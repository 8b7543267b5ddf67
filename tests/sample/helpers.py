"""Shared pieces of the sampler tests: toy distributions, fast tabulated oracles, Monte Carlo floors."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from dlm.process import Absorbing, Linear, LogLinear, Uniform
from dlm.sample.exact import all_states, state_index
from dlm.types import Prediction
from tests.toy_oracle import ToyDistribution

TOY = ToyDistribution(length=3, vocab=3, seed=1)  # non-factorized p(x0) over 27 sequences
PROCESSES = {"absorbing": lambda: Absorbing(3), "uniform": lambda: Uniform(3)}


class Tabulated:
    """An exact toy denoiser evaluated once per time value on every state, then answered by lookup.

    The generate loop shares one t across the batch, so each distinct t costs one pass over N^L states.
    """

    def __init__(self, toy: ToyDistribution, process, kind: str = "mean"):
        self.process, self.kind = process, kind
        self.inner = toy.denoiser(process) if kind == "mean" else toy.score_denoiser(process)
        self.states = all_states(process.width, toy.length)
        self.tables: dict[float, Tensor] = {}

    def __call__(self, xt: Tensor, t: Tensor) -> Prediction | Tensor:
        key = float(t[0])
        assert bool((t == t[0]).all()), "tabulated oracle needs one t per call"
        if key not in self.tables:
            out = self.inner(self.states, torch.full((len(self.states),), key, dtype=t.dtype))
            self.tables[key] = out if isinstance(out, Tensor) else out.log_score
        table = self.tables[key][state_index(xt, self.process.width)]
        return table if self.kind == "mean" else Prediction(log_score=table)


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


def empirical_law(x: Tensor, width: int) -> Tensor:
    return torch.bincount(state_index(x, width), minlength=width ** x.shape[1]).double() / len(x)


def mc_floor(p: Tensor, n: int) -> float:
    """E[TV(empirical of n draws, p)] ~ 1/2 sum_x sqrt(2 p (1 - p) / (pi n)) (normal approximation per cell)."""
    return 0.5 * float(torch.sqrt(2 * p * (1 - p) / (math.pi * n)).sum())


def mc_threshold(p: Tensor, n: int, quantile: float = 0.999, draws: int = 4000) -> float:
    """The `quantile` of TV(empirical law of n exact draws from p, p), simulated with a fixed seed.

    Its mean is mc_floor(p, n); the spread depends on the number of cells (sd ~0.2 floor for 27, ~0.35 for 9).
    """
    p = p.double().clamp_min(0).numpy()
    counts = np.random.default_rng(0).multinomial(n, p / p.sum(), size=draws)
    tv = 0.5 * np.abs(counts / n - p / p.sum()).sum(-1)
    return float(np.quantile(tv, quantile))


def fitted_order(steps: list[int], errors: list[float]) -> float:
    """Least-squares slope of -log(error) against log(steps)."""
    return -float(np.polyfit(np.log(steps), np.log(errors), 1)[0])
