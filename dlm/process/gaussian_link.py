"""Duo's link between Gaussian and uniform-state diffusion (Sahoo et al., arXiv 2506.10892 §3, the "diffusion
transformation operator"; docs/distillation.md#dcd): for a latent w = mu e_x + eps with eps ~ N(0, I_N), the token
z = argmax_v w_v is exactly a uniform-state sample q(z | x) = alpha e_x + (1 - alpha)/N with
    alpha = (N P(mu) - 1) / (N - 1),      P(mu) = int phi(u - mu) Phi(u)^(N - 1) du,
the probability that the true coordinate wins the argmax (phi, Phi the standard normal pdf and cdf; Duo writes
w = alpha~ e_x + sigma~ eps, and only mu = alpha~ / sigma~ = e^{-gamma/2} matters for the argmax). We invert it
for the model's own schedule: mu(t) with alpha(mu(t)) = alpha_t, so that argmax(mu_t e_x + eps) ~ q_t(. | x) of the
schedule the model was trained with. P is a quadrature on a fixed grid; mu is read from a table of alpha(mu) (once
per N and device) and refined by Newton steps with the exact slope dalpha/dmu: float64, no files.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

GRID = torch.linspace(-12.0, 24.0, 6001, dtype=torch.float64)  # u; phi(u - mu) is negligible outside for mu <= 16
MU_MAX = 16.0
TABLE_MU = torch.linspace(0.0, MU_MAX, 513, dtype=torch.float64)  # the start table of mu_of_alpha


def win_probability(mu: Tensor, n: int) -> Tensor:
    """P(mu) = int phi(u - mu) Phi(u)^(n - 1) du for each mu (...,) float64 -> (...,) (trapezoid on GRID)."""
    u, _, integrand = _integrand(mu, n)
    return torch.trapezoid(integrand, u, dim=-1)


def alpha_of_mu(mu: Tensor, n: int) -> Tensor:
    """alpha = (n P(mu) - 1) / (n - 1): the uniform-state keep probability of argmax(mu e_x + eps)."""
    return (n * win_probability(mu, n) - 1) / (n - 1)


def mu_of_alpha(alpha: Tensor, n: int, newton_steps: int = 3) -> Tensor:
    """The mu >= 0 with alpha_of_mu(mu) = alpha (alpha (...,) in [0, 1]; alpha <= 0 gives 0, alpha beyond
    alpha_of_mu(MU_MAX) gives MU_MAX) -> float64 (...,): linear interpolation in a table of alpha_of_mu on
    TABLE_MU, then Newton steps mu <- mu - (alpha(mu) - alpha) / alpha'(mu), alpha' = n P'(mu) / (n - 1) with
    P'(mu) = int (u - mu) phi(u - mu) Phi(u)^(n - 1) du (quadratic convergence from the table's ~1e-4)."""
    values, inverse = alpha.double().unique(return_inverse=True)  # rows share a few times: solve each once
    return _invert(values, n, newton_steps)[inverse]


def _integrand(mu: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """(GRID, u - mu (..., G), phi(u - mu) Phi(u)^(n - 1) (..., G)) for mu (...,)."""
    u = GRID.to(mu.device)
    z = u - mu.double().unsqueeze(-1)
    return u, z, torch.exp(-0.5 * z**2 - 0.5 * math.log(2 * math.pi) + (n - 1) * torch.special.log_ndtr(u))


@functools.cache
def _alpha_table(n: int, device: torch.device) -> Tensor:
    return alpha_of_mu(TABLE_MU.to(device), n)


def _invert(alpha: Tensor, n: int, newton_steps: int) -> Tensor:
    table_mu, table_alpha = TABLE_MU.to(alpha.device), _alpha_table(n, alpha.device)
    target = alpha.clamp(float(table_alpha[0]), float(table_alpha[-1]))
    right = torch.searchsorted(table_alpha, target).clamp(1, len(table_mu) - 1)
    a0, a1 = table_alpha[right - 1], table_alpha[right]
    weight = torch.where(a1 > a0, (target - a0) / (a1 - a0), torch.zeros_like(target))
    mu = table_mu[right - 1] + weight * (table_mu[right] - table_mu[right - 1])
    for _ in range(newton_steps):
        u, z, integrand = _integrand(mu, n)
        residual = (n * torch.trapezoid(integrand, u, dim=-1) - 1) / (n - 1) - target
        slope = n * torch.trapezoid(z * integrand, u, dim=-1) / (n - 1)
        step = torch.where(slope > 0, residual / slope, torch.zeros_like(residual))
        mu = (mu - step).clamp(0.0, MU_MAX)
    return mu
