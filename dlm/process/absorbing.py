"""Absorbing (masked) diffusion: each token jumps to the mask id m with probability 1 - alpha_t and stays there.

MDLM (arXiv 2406.07524 §3); MD4 (arXiv 2406.04329); SEDD's absorbing graph (arXiv 2310.16834). pi = onehot(m).

Bounds. The masked ELBO of a mean-parameterized (SUBS) denoiser (docs/masked.md#continuous-time-elbo):
    -log p(x0) <= int_0^1 E_{x_t ~ q_t} [ (-alpha'_t / (1 - alpha_t)) sum_{l: x_t^l = m} -log x_theta^l(x0^l|x_t) ] dt.
SEDD's score entropy (docs/score_entropy.md), s = log-score, r = 1/expm1(sigma), only at x_t = m:
    SE = sum_{y != m} exp(s_y) - r s_{x0} + r (log r - 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dlm.process.base import Capability, MaskPrior, Process, expm1_sigma
from dlm.process.schedules import Schedule
from dlm.registry import PROCESSES, ConfigError
from dlm.types import Prediction
from dlm.utils.cross_entropy import gathered, logsumexp_and_gather
from dlm.utils.shapes import per_sequence


@PROCESSES.register("absorbing")
class Absorbing(MaskPrior, Process):
    """mask_id defaults to vocab_size (appended, model width vocab_size + 1); a tokenizer's own mask id
    inside the vocabulary (BERT's [MASK]) keeps the width at vocab_size."""

    capabilities = frozenset({Capability.MASK_STATE, Capability.ABSORBING, Capability.FIXED_MIXTURE,
                              Capability.SCORE_ENTROPY})

    def __init__(self, vocab_size: int, schedule: Schedule | None = None, mask_id: int | None = None):
        super().__init__(vocab_size, schedule)
        self.mask_id = vocab_size if mask_id is None else mask_id
        if not 0 <= self.mask_id <= vocab_size:
            raise ConfigError(f"mask_id {self.mask_id} must lie in [0, vocab_size={vocab_size}]")
        self.width = vocab_size + 1 if self.mask_id == vocab_size else vocab_size

    @classmethod
    def build(cls, vocab_size: int, schedule: Schedule, *, mask_id: int | None = None) -> Absorbing:
        return cls(vocab_size, schedule, mask_id=mask_id)

    def movable(self, xt: Tensor) -> Tensor:
        """A clean token is never re-masked nor changed by a reverse step: only masks move."""
        return xt == self.mask_id

    def x0_at_masks(self, prediction: Prediction) -> Tensor:
        """x_theta (..., N) at masked positions in the prediction's dtype (float32 for a real model: no float64 copy
        over the vocabulary). At a mask both outputs give it as a softmax over the clean columns: a mean model's
        project_x0(exp(log_probs)), and a score model's x0_from_score, since there s_y = x_theta(y) / expm1(sigma)."""
        logits = prediction.log_probs if prediction.log_probs is not None else prediction.log_score
        probs = torch.softmax(logits, -1)
        if bool((probs[..., self.mask_id] > 0).any()):  # else (SUBS: log x_theta(m) = -inf) no copy is needed
            mask = torch.tensor([self.mask_id], device=logits.device)
            probs = torch.softmax(logits.index_fill(-1, mask, float("-inf")), -1)  # the one non-clean column
        return probs

    def mask_stay(self, t: float, s: float) -> float:
        """P(x_s = m | x_t = m) of the posterior step for any normalized x_theta: (1 - alpha_s) / (1 - alpha_t)."""
        alpha = self.schedule.alpha(torch.tensor([t, s], dtype=torch.float64))
        return float((1 - alpha[1]) / (1 - alpha[0]))

    def mask_exit_rate(self, t: float) -> float:
        """sum_y R_t(m -> y) = -alpha'_t / (1 - alpha_t) for any normalized x_theta: the total reverse rate out of the
        mask (mean_rates), which needs no sum over the vocabulary."""
        return float(self.schedule.masked_weight(torch.tensor(t, dtype=torch.float64)))

    def elbo_integrand(self, log_probs: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """The masked ELBO integrand (module docstring), weight masked_weight(t) = -alpha'/(1 - alpha). -> (B, L)."""
        return masked_integrand(log_probs.float(), x0, xt, self.mask_id, self.schedule.masked_weight(t.float()))

    def score_entropy(self, log_score: Tensor, x0: Tensor, xt: Tensor, sigma: Tensor,
                      offset: Tensor | None = None) -> Tensor:
        return absorbing_score_entropy(log_score, x0, xt, sigma, self.mask_id, offset)

    def log_score_offset(self, sigma: Tensor, width: int) -> Tensor:
        """SEDD's prior scaling: log expm1(sigma) + log(N - 1) (an uninformed model: x_theta uniform)."""
        return torch.log(expm1_sigma(sigma)) + math.log(width - 1)

    def check_tokens(self, x0: Tensor) -> None:
        super().check_tokens(x0)
        if self.mask_id < self.vocab_size and bool((x0 == self.mask_id).any()):
            raise ConfigError(f"clean data contains the mask id {self.mask_id}; it may only appear in x_t")


def masked_integrand(log_probs: Tensor, x0: Tensor, xt: Tensor, mask_id: int, weight: Tensor) -> Tensor:
    """weight_b * 1{x_t = m} * -log x_theta(x0).  log_probs (B, L, N), x0/xt (B, L), weight (B,) -> (B, L)."""
    return weighted_at_masks(-gathered(log_probs, x0), xt, mask_id, weight)


def weighted_at_masks(nll: Tensor, xt: Tensor, mask_id: int, weight: Tensor) -> Tensor:
    """weight_b * 1{x_t = m} * nll.  nll (B, L), xt (B, L), weight (B,) -> (B, L) in nll's dtype."""
    return per_sequence(weight.to(nll.dtype), 2) * nll * (xt == mask_id)


def absorbing_score_entropy(log_score: Tensor, x0: Tensor, xt: Tensor, sigma: Tensor, mask_id: int,
                            offset: Tensor | None = None) -> Tensor:
    """(B, L, N), (B, L), (B, L), (B,) -> SE (B, L) float64, zero where x_t is not masked; the score is
    log_score - offset (B,). Lean: sum_{y != m} exp(s_y) = exp(logsumexp_{y != m} s_y), read with s_{x0} in one
    autograd node in log_score's dtype (logsumexp_and_gather); exp(s) is never kept. The per-position combination
    is float64."""
    r = per_sequence(1.0 / expm1_sigma(sigma.double()), 2)
    shift = 0.0 if offset is None else per_sequence(offset.double(), 2)
    lse, picked = logsumexp_and_gather(log_score, x0, exclude=mask_id)  # one autograd node (cross_entropy.py)
    pos = torch.exp(lse.double() - shift)
    neg = r * (picked.double() - shift)
    const = r * (torch.log(r) - 1)
    return torch.where(xt == mask_id, pos - neg + const, 0.0)  # where, not *: an unmasked inf must not give NaN
