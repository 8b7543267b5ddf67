"""Uniform-state diffusion: with probability 1 - alpha_t a token is redrawn uniformly from all N tokens.

D3PM uniform (arXiv 2107.03006), UDLM (arXiv 2412.10193), Duo (arXiv 2506.10892), SEDD's uniform graph.
q(x_t | x_0) = alpha_t onehot(x_0) + (1 - alpha_t)/N; pi = uniform; width N = vocab_size (no mask token).

Bounds. The UDLM/Duo ELBO (docs/uniform.md#the-udlm--duo-elbo), with xbar = N alpha_t onehot(x0) + (1 - alpha_t) 1 and
xbar_theta = N alpha_t x_theta + (1 - alpha_t) 1, at z = x_t:
    L_t = (alpha'_t / (N alpha_t)) [ N/xbar_z - N/xbar_theta_z
           - sum_j (xbar_j / xbar_z) (log xbar_theta_z - log xbar_theta_j + log xbar_j - log xbar_z) ].
Every position contributes. We use the schedule's own alpha and alpha' (the reference hard-codes alpha = 1 - t).
The sum over j is evaluated in closed form, since xbar takes only two values (as Duo does); the one sum over j of
log xbar_theta keeps no (B, L, N) tensor for autograd (MixtureLogSum).
SEDD's score entropy on the uniform graph (docs/score_entropy.md), s = log-score, e = expm1(sigma):
    ratio = e/(e + N), neg0 = mean_y s - s_{x_t}/N, pos = mean_y exp(s) - exp(s_{x_t})/N,
    x_t = x0:  neg = ratio neg0,           const = ((N-1)/N) ratio (log ratio - 1);
    x_t != x0: neg = s_{x0}/e + neg0,        const = ((-log ratio - 1)/ratio - (N - 2))/N;
    SE = pos - neg + const.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dlm.process.base import Capability, Process, expm1_sigma
from dlm.process.schedules import Schedule
from dlm.registry import PROCESSES
from dlm.utils.cross_entropy import gathered
from dlm.utils.shapes import per_sequence


@PROCESSES.register("uniform")
class Uniform(Process):
    capabilities = frozenset({Capability.FIXED_MIXTURE, Capability.UNIFORM_PRIOR, Capability.SCORE_ENTROPY})

    def __init__(self, vocab_size: int, schedule: Schedule | None = None):
        super().__init__(vocab_size, schedule)
        self.width = vocab_size

    def limit(self, like: Tensor) -> Tensor:
        return torch.full((self.width,), 1.0 / self.width, dtype=like.dtype, device=like.device)

    def prior(self, shape, *, generator=None, device=None) -> Tensor:
        return torch.randint(0, self.width, tuple(shape), generator=generator, device=device)

    def elbo_integrand(self, log_probs: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """The UDLM/Duo ELBO integrand L_t (module docstring) -> (B, L) float32, evaluated in float64 (the training
        loss, objectives/uniform_elbo.py, calls uniform_integrand in the logits' dtype)."""
        return uniform_integrand(log_probs.double(), x0, xt, self.schedule, t).float()

    def prior_kl(self) -> float:
        """KL(q(x_1 | x0) || uniform) per position, exact (alpha_1 > 0 under LogLinear's eps)."""
        return uniform_prior_kl(float(self.schedule.alpha(torch.tensor(1.0, dtype=torch.float64))), self.width)

    # --- stage laws as mixtures (sample/mixture.py): weights from p_xt = x_theta(x_t) alone, float64 ---------
    def _scalars(self, t: float) -> tuple[float, float, float]:
        t = torch.tensor(t, dtype=torch.float64)
        return float(self.schedule.alpha(t)), float(self.schedule.dalpha(t)), float(self.schedule.dsigma(t))

    def posterior_parts(self, p_xt: Tensor, t: float, s: float) -> tuple[Tensor, Tensor, Tensor]:
        """`posterior` for a normalized x_theta as unnormalized weights (point at x_t, x_theta, uniform over N):
        [a 1(y = x_t) + (1 - a)/N] [alpha_s x_theta(y) + (1 - alpha_s)/N], a = alpha_t / alpha_s, expands into
            point = a (alpha_s p_xt + (1 - alpha_s)/N),  theta = (1 - a) alpha_s / N,  uniform = (1 - a)(1 - alpha_s)/N.
        p_xt (n,) float64 -> three (n,) tensors."""
        alpha_t, alpha_s, n = self._scalars(t)[0], self._scalars(s)[0], self.width
        a = alpha_t / alpha_s
        point = a * (alpha_s * p_xt + (1 - alpha_s) / n)
        return point, torch.full_like(p_xt, (1 - a) * alpha_s / n), torch.full_like(p_xt, (1 - a) * (1 - alpha_s) / n)

    def rate_parts(self, p_xt: Tensor, t: float) -> tuple[Tensor, Tensor]:
        """`mean_rates` summed over y != x_t by part: R(y) = c1 x_theta(y) + c2 with c1 = -alpha' / (N bar),
        c2 = sigma' (1 - alpha) / (N^2 bar), bar = alpha p_xt + (1 - alpha)/N, so the total rate of the x_theta part is
        c1 (1 - p_xt) and of the uniform part c2 (N - 1) (both over the N - 1 tokens other than x_t). -> two (n,)."""
        alpha, dalpha, dsigma = self._scalars(t)
        n = self.width
        bar = alpha * p_xt + (1 - alpha) / n
        return -dalpha * (1 - p_xt) / (n * bar), dsigma * (1 - alpha) * (n - 1) / (n * n * bar)

    def x0_posterior_parts(self, p_xt: Tensor, t: float) -> tuple[Tensor, Tensor]:
        """`x0_posterior` [alpha_t 1(y = x_t) + (1 - alpha_t)/N] x_theta(y) as (point = alpha_t p_xt, theta =
        (1 - alpha_t)/N) weights. -> two (n,)."""
        alpha = self._scalars(t)[0]
        return alpha * p_xt, torch.full_like(p_xt, (1 - alpha) / self.width)

    def score_entropy(self, log_score: Tensor, x0: Tensor, xt: Tensor, sigma: Tensor,
                      offset: Tensor | None = None) -> Tensor:
        """SEDD's uniform score entropy; no prior scaling here, so offset is always None."""
        return uniform_score_entropy(log_score, x0, xt, sigma)


def uniform_integrand(log_probs: Tensor, x0: Tensor, xt: Tensor, schedule: Schedule, t: Tensor) -> Tensor:
    """log_probs = log x_theta (B, L, N); x0, xt (B, L); t (B,) -> (B, L) nats, float64. The (B, L, N) work, the
    sum over j of log xbar_theta_j, runs in log_probs' dtype (float32 in training) and keeps no (B, L, N) tensor for
    autograd (MixtureLogSum); the per-position combination is float64."""
    n, dtype = log_probs.shape[-1], log_probs.dtype
    alpha = per_sequence(schedule.alpha(t.double()), 2)  # (B, 1)
    dalpha = per_sequence(schedule.dalpha(t.double()), 2)
    one_minus = 1 - alpha
    # log xbar_theta_j = log(N alpha x_theta_j + 1 - alpha): read at z and x0, and summed over j without keeping it
    log_n_alpha, log_one_minus = torch.log(n * alpha).to(dtype), torch.log(one_minus).to(dtype)
    log_bar_theta_z = torch.logaddexp(gathered(log_probs, xt) + log_n_alpha, log_one_minus).double()
    log_bar_theta_x0 = torch.logaddexp(gathered(log_probs, x0) + log_n_alpha, log_one_minus).double()
    log_bar_theta_sum = MixtureLogSum.apply(log_probs, log_n_alpha.unsqueeze(-1), log_one_minus.unsqueeze(-1))
    bar_hi = n * alpha + one_minus  # xbar at x0
    bar_z = torch.where(xt == x0, bar_hi, one_minus)
    sum_bar_log_bar = (n - 1) * one_minus * torch.log(one_minus) + bar_hi * torch.log(bar_hi)
    weighted = (n * (log_bar_theta_z - torch.log(bar_z))
                - one_minus * log_bar_theta_sum.double()
                - n * alpha * log_bar_theta_x0
                + sum_bar_log_bar) / bar_z
    first = n / bar_z - n * torch.exp(-log_bar_theta_z)
    return (dalpha / (n * alpha)) * (first - weighted)


class MixtureLogSum(torch.autograd.Function):
    """sum_j log(exp(lp_j + a) + exp(b)) over the last dim: lp (B, L, N), a, b (B, 1, 1) constants -> (B, L).

    Autograd of the plain expression would keep lp + a and the logaddexp output, two (B, L, N) tensors per step;
    here backward recomputes d/dlp_j = sigmoid(lp_j + a - b) from lp, which the log-softmax keeps anyway."""

    @staticmethod
    def forward(ctx, lp: Tensor, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(lp, a, b)
        shifted = lp + a  # the one (B, L, N) temporary, overwritten in place
        return torch.logaddexp(shifted, b, out=shifted).sum(-1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        lp, a, b = ctx.saved_tensors
        return (lp + (a - b)).sigmoid_().mul_(grad.unsqueeze(-1)), None, None


def uniform_prior_kl(alpha_1: float, n: int) -> float:
    """KL(q(x_1 | x0) || uniform) per position, nats: the prior term Duo logs (arXiv 2506.10892), 0 when alpha_1 = 0."""
    keep = alpha_1 + (1 - alpha_1) / n
    other = (1 - alpha_1) / n
    kl = keep * math.log(keep * n)
    return kl + (n - 1) * other * math.log(other * n) if other > 0 else kl


def uniform_score_entropy(log_score: Tensor, x0: Tensor, xt: Tensor, sigma: Tensor) -> Tensor:
    """(B, L, N), (B, L), (B, L), (B,) -> SE (B, L) float64 at every position; log_score[x_t] is read as 0.
    Lean: reductions in log_score's dtype, exp(s) never materialized: with s_{x_t} = 0 and h the raw values,
    sum_y exp(s_y) - 1 = exp(lse) (-expm1(h_{x_t} - lse)) and mean_y s = (sum_y h_y - h_{x_t}) / N."""
    n = log_score.shape[-1]
    e = per_sequence(expm1_sigma(sigma.double()), 2)
    ratio = e / (e + n)
    h_xt, h_x0 = gathered(log_score, xt).double(), gathered(log_score, x0).double()
    lse = log_score.logsumexp(-1).double()
    neg0 = (log_score.sum(-1).double() - h_xt) / n  # mean_y s with s_{x_t} = 0; s_{x_t} / n = 0
    pos = torch.exp(lse) * -torch.expm1(h_xt - lse) / n  # (sum_y exp(s_y) - 1) / n with s_{x_t} = 0
    same = xt == x0
    neg = torch.where(same, ratio * neg0, h_x0 / e + neg0)
    const = torch.where(same, (n - 1) / n * ratio * (torch.log(ratio) - 1),
                        ((-torch.log(ratio) - 1) / ratio - (n - 2)) / n)
    return pos - neg + const
