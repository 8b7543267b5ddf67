"""Contract for every registered schedule: alpha monotone, alpha(0) ~ 1, derivatives match autograd."""

import pytest
import torch

from dlm.process.schedules import LogLinear, build_schedule
from dlm.registry import SCHEDULES

T = torch.linspace(1e-3, 1.0, 257, dtype=torch.float64)


@pytest.fixture(params=sorted(SCHEDULES))
def schedule(request):
    return build_schedule(request.param)


def test_alpha_is_monotone_and_starts_near_one(schedule):
    alpha = schedule.alpha(T)
    assert torch.all(alpha[1:] < alpha[:-1])
    assert abs(float(schedule.alpha(torch.tensor(0.0, dtype=torch.float64))) - 1) < 1e-3
    assert torch.all((alpha > 0) & (alpha <= 1))


def test_derivatives_match_autograd(schedule):
    t = T.clone().requires_grad_(True)
    (d_alpha,) = torch.autograd.grad(schedule.alpha(t).sum(), t)
    (d_sigma,) = torch.autograd.grad(schedule.sigma(t).sum(), t)
    torch.testing.assert_close(schedule.dalpha(T), d_alpha, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(schedule.dsigma(T), d_sigma, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(schedule.sigma(T), -torch.log(schedule.alpha(T)), rtol=1e-9, atol=1e-12)


def test_masked_weight_is_minus_dalpha_over_one_minus_alpha(schedule):
    expected = -schedule.dalpha(T) / (1 - schedule.alpha(T))
    torch.testing.assert_close(schedule.masked_weight(T), expected, rtol=1e-6, atol=1e-9)


def test_loglinear_weight_is_one_over_t():
    """docs/schedules.md: sigma'/expm1(sigma) == 1/t for t in [1e-3, 1]; the eps cancels."""
    s = LogLinear(eps=1e-3)
    torch.testing.assert_close(s.dsigma(T) / torch.expm1(s.sigma(T)), 1 / T, rtol=1e-6, atol=0)
