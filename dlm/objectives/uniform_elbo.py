"""Uniform-state continuous-time ELBO: UDLM (arXiv 2412.10193) / Duo (arXiv 2506.10892), ALGORITHMS §3.1–3.2.

With xbar = N alpha_t onehot(x0) + (1 - alpha_t) 1 and xbar_theta = N alpha_t x_theta + (1 - alpha_t) 1, at z = x_t:
    L_t = (alpha'_t / (N alpha_t)) [ N/xbar_z - N/xbar_theta_z
           - sum_j (xbar_j / xbar_z) (log xbar_theta_z - log xbar_theta_j + log xbar_j - log xbar_z) ].
Every position contributes. We use the schedule's own alpha and alpha' (the reference hard-codes alpha = 1 - t).
The sum over j is evaluated in closed form, since xbar takes only two values (as Duo does): no (B, L, N) temporaries
beyond log xbar_theta.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dlm.objectives.base import Objective
from dlm.process.schedules import Schedule
from dlm.process.uniform import Uniform
from dlm.registry import OBJECTIVES, ConfigError
from dlm.types import Prediction
from dlm.utils.shapes import per_sequence


def uniform_integrand(log_probs: Tensor, x0: Tensor, xt: Tensor, schedule: Schedule, t: Tensor) -> Tensor:
    """log_probs = log x_theta (B, L, N); x0, xt (B, L); t (B,) -> (B, L) nats, float64 inside."""
    n = log_probs.shape[-1]
    alpha = per_sequence(schedule.alpha(t.double()), 2)  # (B, 1)
    dalpha = per_sequence(schedule.dalpha(t.double()), 2)
    one_minus = 1 - alpha
    # log xbar_theta_j = log(N alpha x_theta_j + 1 - alpha), (B, L, N)
    log_bar_theta = torch.logaddexp(log_probs.double() + torch.log(n * alpha).unsqueeze(-1),
                                    torch.log(one_minus).unsqueeze(-1))
    log_bar_theta_z = log_bar_theta.gather(-1, xt.unsqueeze(-1)).squeeze(-1)
    log_bar_theta_x0 = log_bar_theta.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    bar_hi = n * alpha + one_minus  # xbar at x0
    bar_z = torch.where(xt == x0, bar_hi, one_minus)
    sum_bar_log_bar = (n - 1) * one_minus * torch.log(one_minus) + bar_hi * torch.log(bar_hi)
    weighted = (n * (log_bar_theta_z - torch.log(bar_z))
                - one_minus * log_bar_theta.sum(-1)
                - n * alpha * log_bar_theta_x0
                + sum_bar_log_bar) / bar_z
    first = n / bar_z - n * torch.exp(-log_bar_theta_z)
    return (dalpha / (n * alpha)) * (first - weighted)


def uniform_prior_kl(alpha_1: float, n: int) -> float:
    """KL(q(x_1 | x0) || uniform) per position, nats: the prior term Duo logs (§3.2), 0 when alpha_1 = 0."""
    keep = alpha_1 + (1 - alpha_1) / n
    other = (1 - alpha_1) / n
    kl = keep * math.log(keep * n)
    return kl + (n - 1) * other * math.log(other * n) if other > 0 else kl


@OBJECTIVES.register("uniform_elbo")
class UniformELBO(Objective):
    """UDLM/Duo objective: plain log-softmax over the V tokens, conditioned on sigma(t) (UDLM default)."""

    def __init__(self, process: Uniform, cfg):
        if not isinstance(process, Uniform):
            raise ConfigError(f"objective 'uniform_elbo' needs process 'uniform', got {type(process).__name__}")
        super().__init__(process, cfg)

    def predict(self, logits: Tensor, xt: Tensor, t: Tensor | None) -> Prediction:
        return Prediction(log_probs=torch.log_softmax(logits.float(), dim=-1))

    def integrand(self, prediction: Prediction, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        return uniform_integrand(prediction.log_probs, x0, xt, self.process.schedule, t).float()
