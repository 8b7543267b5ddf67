"""Distances between a sampler's empirical law and the exact one, and the Monte Carlo floors they are judged by."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from dlm.sample.exact import state_index


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
