"""What samplers read from a denoiser: x0 probabilities, concrete scores and reverse CTMC rates, for any output.

A denoiser returns either the mean parameterization x_theta(x0^l | x_t) (MDLM SUBS, UDLM/Duo, RADD) or SEDD's log
concrete score (arXiv 2310.16834). Every process here is a mixture q_t(y | x0) = alpha_t 1[y = x0] + (1 - alpha_t) pi_y
(process/base.py), and for it the two are linked per position by
    s_y = bar_y / bar_{x_t},   bar = alpha_t x_theta + (1 - alpha_t) pi = marginal(x_theta, alpha_t)     (mean -> score)
    x_theta = (s / sum_y s_y - (1 - alpha_t) pi) / alpha_t                                          (score -> mean)
since sum_y bar_y = 1. x_theta here is the ELBO optimum p(x0^l | x_t^{-l}) (the masked and UDLM losses are minimized by
it, see tests/toy_oracle.py); for absorbing at a mask this is the Bayes posterior and s_y = x_theta(y) / expm1(sigma)
(ALGORITHMS §2.8). The Bayes posterior of x0 itself is normalize(q_t(x_t | x0) x_theta(x0)).

The forward generator of such a process is sigma'(t) (1 pi^T - I), so the reverse rate out of x_t (SEDD §2.2) is
    R_t(x_t -> y) = sigma'(t) pi_{x_t} s_y   (y != x_t):
absorbing: sigma' s_y = x_theta(y) sigma' / expm1(sigma) from a mask and 0 from a clean token; uniform: sigma' s_y / N.
Everything is float64: (B, L, N) tensors, t a float64 (B,) tensor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.denoiser import Denoiser
from dlm.process.base import Process
from dlm.types import Prediction
from dlm.utils.shapes import per_sequence


def _alpha(process: Process, t: Tensor) -> Tensor:
    """alpha_t as float64 (B,)."""
    return process.schedule.alpha(t.double())


def allowed_x0(process: Process, xt: Tensor, t: Tensor) -> Tensor:
    """bool (B, L, N): the clean tokens x0 compatible with x_t, q_t(x_t | x0) > 0 and x0 not the mask."""
    return (process.kernel(xt, _alpha(process, t)) > 0) & process.clean_mask(xt)


def project_x0(process: Process, x0_probs: Tensor, xt: Tensor, t: Tensor) -> Tensor:
    """Zero every x0 the data cannot be (the mask) or x_t rules out (q_t(x_t | x0) = 0: carry-over of clean tokens
    under absorbing), then renormalize. A row left with no mass becomes uniform over the allowed x0."""
    allowed = allowed_x0(process, xt, t)
    x0_probs = x0_probs.double().clamp_min(0) * allowed
    total = x0_probs.sum(-1, keepdim=True)
    fallback = allowed.double() / allowed.sum(-1, keepdim=True)
    return torch.where(total > 0, x0_probs / total.clamp_min(1e-300), fallback)


def x0_from_score(process: Process, score: Tensor, xt: Tensor, t: Tensor) -> Tensor:
    """Concrete score (B, L, N) -> x_theta (B, L, N): invert s proportional to alpha x_theta + (1 - alpha) pi."""
    alpha = per_sequence(_alpha(process, t), 3)
    bar = score.double() / score.double().sum(-1, keepdim=True)
    return project_x0(process, (bar - (1 - alpha) * process.limit(bar)) / alpha, xt, t)


def x0_probs(process: Process, prediction: Prediction, xt: Tensor, t: Tensor) -> Tensor:
    """x_theta(x0^l | x_t) as float64 probabilities (B, L, N), projected onto what x_t allows."""
    if prediction.log_probs is not None:
        return project_x0(process, prediction.log_probs.double().exp(), xt, t)
    return x0_from_score(process, prediction.log_score.double().exp(), xt, t)


def concrete_score(process: Process, prediction: Prediction, xt: Tensor, t: Tensor) -> Tensor:
    """s(x_t)_y ~ p_t(x_t^{l <- y}) / p_t(x_t) per position, float64 (B, L, N); 1 at the current token."""
    if prediction.log_score is not None:
        return prediction.log_score.double().exp()
    return process.concrete_score(xt, x0_probs(process, prediction, xt, t), t)


def reverse_rates(process: Process, score: Tensor, xt: Tensor, t: Tensor) -> Tensor:
    """R_t(x_t -> y) = sigma'(t) pi_{x_t} s_y for y != x_t, and 0 at y = x_t (the stay entry). (B, L, N)."""
    pi_xt = process.limit(score)[xt].unsqueeze(-1)
    rates = per_sequence(process.schedule.dsigma(t.double()), 3) * pi_xt * score.double()
    return rates.scatter(-1, xt.unsqueeze(-1), 0.0)


def mean_rates(process: Process, x0_probs: Tensor, xt: Tensor, t: Tensor) -> Tensor:
    """The same rates from x_theta, with sigma' bar = -alpha' x_theta + sigma' (1 - alpha) pi expanded so that
    alpha_t = 0 (t = 1 under LogLinear(eps=0)) stays finite: R = pi_{x_t} (-alpha' x_theta + sigma' (1 - alpha) pi)
    / bar_{x_t}, 0 at the current token and out of states pi does not reach (clean tokens under absorbing)."""
    schedule, t = process.schedule, t.double()
    alpha, dalpha, dsigma = (per_sequence(f(t), 3) for f in (schedule.alpha, schedule.dalpha, schedule.dsigma))
    pi = process.limit(x0_probs)
    leak = torch.where(pi > 0, dsigma * (1 - alpha) * pi, torch.zeros_like(dsigma * pi))
    bar_xt = process.marginal(x0_probs.double(), alpha.flatten()).gather(-1, xt.unsqueeze(-1))
    pi_xt = pi[xt].unsqueeze(-1)
    rates = torch.where(pi_xt > 0, pi_xt * (-dalpha * x0_probs.double() + leak) / bar_xt, 0.0)
    return rates.scatter(-1, xt.unsqueeze(-1), 0.0)


def x0_posterior(process: Process, x0_probs: Tensor, xt: Tensor, t: Tensor) -> Tensor:
    """Bayes p(x0^l | x_t) = normalize(q_t(x_t | x0) x_theta(x0)): the law of the jump t -> 0. (B, L, N)."""
    joint = process.kernel(xt, _alpha(process, t)) * x0_probs.double()
    return joint / joint.sum(-1, keepdim=True)


class NFECounter:
    """Wraps a denoiser and counts its evaluations: `calls` (forward passes) and `rows` (sequences evaluated)."""

    def __init__(self, denoiser: Denoiser):
        self.denoiser = denoiser
        self.supports_kv_cache = getattr(denoiser, "supports_kv_cache", False)  # the wrapped model's, for samplers
        self.calls = 0
        self.rows = 0

    def __call__(self, xt: Tensor, t: Tensor | None, **kwargs) -> Prediction | Tensor:
        self.calls += 1
        self.rows += xt.shape[0]
        return self.denoiser(xt, t, **kwargs)
