"""Duo's DCD trajectory: deterministic given the seed, each end a uniform-state sample of the model's own schedule,
and the two ends coupled through one Gaussian draw (a token right at t stays right at s < t)."""

from __future__ import annotations

import math

import torch

from dlm.process import LogLinear, Uniform
from dlm.process.gaussian_link import alpha_of_mu, mu_of_alpha, win_probability
from dlm.train.distill.dcd import consistency_pair, consistency_times


def pair(seed: int, x0: torch.Tensor, t: float, s: float, process: Uniform):
    times = [torch.full((x0.shape[0],), v, dtype=torch.float64) for v in (t, s)]
    return consistency_pair(process, x0, *times, torch.Generator().manual_seed(seed))


def test_trajectory_is_deterministic_given_the_seed():
    process = Uniform(7, LogLinear(eps=1e-3))
    x0 = torch.randint(7, (16, 12), generator=torch.Generator().manual_seed(0))
    zt, zs = pair(3, x0, 0.7, 0.4, process)
    again_t, again_s = pair(3, x0, 0.7, 0.4, process)
    assert torch.equal(zt, again_t) and torch.equal(zs, again_s)
    other_t, _ = pair(4, x0, 0.7, 0.4, process)
    assert not torch.equal(zt, other_t)
    t1, s1 = consistency_times(8, 0.25, torch.Generator().manual_seed(2), torch.device("cpu"))
    t2, s2 = consistency_times(8, 0.25, torch.Generator().manual_seed(2), torch.device("cpu"))
    assert torch.equal(t1, t2) and torch.equal(s1, s2)
    assert torch.allclose(t1 - s1, torch.full_like(t1, 0.25)) and float(t1.max()) <= 1 and float(s1.min()) >= 0


def test_each_end_is_a_uniform_state_sample_and_the_ends_are_coupled():
    n, rows = 7, 40_000
    process = Uniform(n, LogLinear(eps=1e-3))
    x0 = torch.zeros(rows, 1, dtype=torch.long)
    t, s = 0.8, 0.5
    zt, zs = pair(0, x0, t, s, process)
    for z, time in ((zt, t), (zs, s)):
        alpha = float(process.schedule.alpha(torch.tensor(time, dtype=torch.float64)))
        expected = torch.full((n,), (1 - alpha) / n, dtype=torch.float64)
        expected[0] += alpha
        freq = torch.bincount(z.flatten(), minlength=n).double() / rows
        assert float((freq - expected).abs().max()) < 4 * math.sqrt(0.25 / rows), (time, freq, expected)
    # one Gaussian draw for both ends: mu_s > mu_t, so a token already right at t is right at s
    right_t = zt == 0
    assert bool((zs[right_t] == 0).all())
    assert float((zs == zt).double().mean()) > 0.7  # independent draws would agree ~0.36 of the time here


def test_gaussian_link_matches_its_integral_and_inverts():
    n = 11
    mu = torch.tensor([0.0, 0.5, 2.0, 4.0], dtype=torch.float64)
    assert abs(float(win_probability(mu[:1], n)) - 1 / n) < 1e-9  # no signal: every token wins 1/n of the time
    eps = torch.randn(100_000, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for value in mu[1:]:
        wins = float(((eps[:, 0] + value) >= eps[:, 1:].max(-1).values).double().mean())
        assert abs(wins - float(win_probability(value, n))) < 4 * math.sqrt(0.25 / 100_000)
    alpha = torch.tensor([1e-3, 0.3, 0.9, 0.999], dtype=torch.float64)
    assert torch.allclose(alpha_of_mu(mu_of_alpha(alpha, n), n), alpha, atol=1e-9)
