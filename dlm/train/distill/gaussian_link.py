"""Duo's link between Gaussian and uniform-state diffusion (Sahoo et al., arXiv 2506.10892 §3, the "diffusion
transformation operator"; docs/distillation.md#dcd): for a latent w = mu e_x + eps with eps ~ N(0, I_N), the token
z = argmax_v w_v is exactly a uniform-state sample q(z | x) = alpha e_x + (1 - alpha)/N with
    alpha = (N P(mu) - 1) / (N - 1),      P(mu) = int phi(u - mu) Phi(u)^(N - 1) du,
the probability that the true coordinate wins the argmax (phi, Phi the standard normal pdf and cdf; Duo writes
w = alpha~ e_x + sigma~ eps, and only mu = alpha~ / sigma~ = e^{-gamma/2} matters for the argmax). We invert it
for the model's own schedule: mu(t) with alpha(mu(t)) = alpha_t, so that argmax(mu_t e_x + eps) ~ q_t(. | x) of the
schedule the model was trained with. P is a quadrature on a fixed grid, mu a bisection: float64, no tables.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

GRID = torch.linspace(-12.0, 24.0, 6001, dtype=torch.float64)  # u; phi(u - mu) is negligible outside for mu <= 16
MU_MAX = 16.0


def win_probability(mu: Tensor, n: int) -> Tensor:
    """P(mu) = int phi(u - mu) Phi(u)^(n - 1) du for each mu (...,) float64 -> (...,) (trapezoid on GRID)."""
    u = GRID.to(mu.device)
    log_phi = -0.5 * (u - mu.double().unsqueeze(-1)) ** 2 - 0.5 * math.log(2 * math.pi)
    integrand = torch.exp(log_phi + (n - 1) * torch.special.log_ndtr(u))
    return torch.trapezoid(integrand, u, dim=-1)


def alpha_of_mu(mu: Tensor, n: int) -> Tensor:
    """alpha = (n P(mu) - 1) / (n - 1): the uniform-state keep probability of argmax(mu e_x + eps)."""
    return (n * win_probability(mu, n) - 1) / (n - 1)


def mu_of_alpha(alpha: Tensor, n: int, iterations: int = 60) -> Tensor:
    """The mu >= 0 with alpha_of_mu(mu) = alpha, by bisection on [0, MU_MAX] (alpha (...,) in [0, 1]; alpha <= 0
    gives 0, alpha beyond alpha_of_mu(MU_MAX) gives MU_MAX). -> float64 (...,)."""
    values, inverse = alpha.double().unique(return_inverse=True)  # rows share a few times: solve each once
    return _bisect(values, n, iterations)[inverse]


def _bisect(alpha: Tensor, n: int, iterations: int) -> Tensor:
    low, high = torch.zeros_like(alpha), torch.full_like(alpha, MU_MAX)
    for _ in range(iterations):
        mid = (low + high) / 2
        below = alpha_of_mu(mid, n) < alpha
        low, high = torch.where(below, mid, low), torch.where(below, high, mid)
    return (low + high) / 2
