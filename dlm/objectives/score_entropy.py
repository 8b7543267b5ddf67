"""Score entropy (SEDD, arXiv 2310.16834; ALGORITHMS §2.3–2.5) for the absorbing and uniform graphs.

The model outputs a log concrete score s_y ~ log p_t(y)/p_t(x_t) with s_{x_t} = 0. Per position the loss is
sigma'(t) * SE, with (s = log-score, exp(s) = score, e = expm1(sigma)):
  absorbing (only x_t = m):  SE = sum_{y != m} exp(s_y) - r s_{x0} + r (log r - 1),   r = 1/e;
  uniform:  ratio = e/(e + N), neg0 = mean_y s - s_{x_t}/N, pos = mean_y exp(s) - exp(s_{x_t})/N,
            x_t = x0:  neg = ratio neg0,           const = ((N-1)/N) ratio (log ratio - 1);
            x_t != x0: neg = s_{x0}/e + neg0,        const = ((-log ratio - 1)/ratio - (N - 2))/N;
            SE = pos - neg + const.
For absorbing with scale_by_sigma the network output h becomes h - log(e) - log(N - 1) (SEDD's prior scaling).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dlm.objectives.base import Objective
from dlm.process.absorbing import Absorbing
from dlm.process.base import Process
from dlm.process.uniform import Uniform
from dlm.registry import OBJECTIVES, ConfigError
from dlm.types import Prediction
from dlm.utils.shapes import per_sequence


def _expm1_sigma(sigma: Tensor) -> Tensor:
    """e^sigma - 1, with expm1 where sigma < 0.5 (the SEDD switch)."""
    return torch.where(sigma < 0.5, torch.expm1(sigma), torch.exp(sigma) - 1)


def absorbing_score_entropy(log_score: Tensor, x0: Tensor, xt: Tensor, sigma: Tensor, mask_id: int) -> Tensor:
    """(B, L, N), (B, L), (B, L), (B,) -> SE (B, L), zero where x_t is not masked."""
    r = per_sequence(1.0 / _expm1_sigma(sigma), 2)
    score = log_score.exp()
    pos = score.sum(-1) - score[..., mask_id]
    neg = r * log_score.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    const = r * (torch.log(r) - 1)
    return (pos - neg + const) * (xt == mask_id)


def uniform_score_entropy(log_score: Tensor, x0: Tensor, xt: Tensor, sigma: Tensor) -> Tensor:
    """(B, L, N), (B, L), (B, L), (B,) -> SE (B, L) at every position."""
    n = log_score.shape[-1]
    e = per_sequence(_expm1_sigma(sigma), 2)
    ratio = e / (e + n)
    s_xt = log_score.gather(-1, xt.unsqueeze(-1)).squeeze(-1)
    s_x0 = log_score.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    neg0 = log_score.mean(-1) - s_xt / n
    pos = log_score.exp().mean(-1) - s_xt.exp() / n
    same = xt == x0
    neg = torch.where(same, ratio * neg0, s_x0 / e + neg0)
    const = torch.where(same, (n - 1) / n * ratio * (torch.log(ratio) - 1),
                        ((-torch.log(ratio) - 1) / ratio - (n - 2)) / n)
    return pos - neg + const


@OBJECTIVES.register("score_entropy")
class ScoreEntropy(Objective):
    """SEDD. Conditioned on sigma (required: the score depends on t)."""

    def __init__(self, process: Process, cfg, scale_by_sigma: bool = True):
        if not isinstance(process, (Absorbing, Uniform)):
            raise ConfigError(f"score_entropy supports absorbing and uniform processes, got {type(process).__name__}")
        if not cfg.time_conditioning:
            raise ConfigError("objective 'score_entropy' needs objective.time_conditioning=true (score depends on t)")
        super().__init__(process, cfg)
        self.scale_by_sigma = scale_by_sigma and isinstance(process, Absorbing)

    def predict(self, logits: Tensor, xt: Tensor, t: Tensor | None) -> Prediction:
        h = logits.float()
        if self.scale_by_sigma:
            sigma = self.process.schedule.sigma(t.float())
            h = h - per_sequence(torch.log(_expm1_sigma(sigma)), 3) - math.log(h.shape[-1] - 1)
        return Prediction(log_score=h.scatter(-1, xt.unsqueeze(-1), 0.0))

    def integrand(self, prediction: Prediction, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        return score_entropy_integrand(self.process, prediction.log_score, x0, xt, t)


def score_entropy_integrand(process: Process, log_score: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
    """sigma'(t) * SE: the per-token DSE bound integrand (B, L) for either graph."""
    schedule = process.schedule
    sigma, dsigma = schedule.sigma(t.double()), schedule.dsigma(t.double())
    log_score = log_score.double()
    if isinstance(process, Absorbing):
        se = absorbing_score_entropy(log_score, x0, xt, sigma, process.mask_id)
    else:
        se = uniform_score_entropy(log_score, x0, xt, sigma)
    return (per_sequence(dsigma, 2) * se).float()
