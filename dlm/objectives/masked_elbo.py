"""Masked (absorbing) diffusion ELBO with the SUBS parameterization: MDLM (arXiv 2406.07524), MD4 (arXiv 2406.04329).

Continuous time (docs/masked.md#continuous-time-elbo; the integrand is the process's, process/absorbing.py):
    -log p(x0) <= int_0^1 E_{x_t ~ q_t} [ (-alpha'_t / (1 - alpha_t)) sum_{l: x_t^l = m} -log x_theta^l(x0^l|x_t) ] dt.
Discrete time with T steps (MD4, arXiv 2406.04329; exact for any schedule): t on {1/T, ..., 1}, s = t - 1/T and weight
    T (alpha_s - alpha_t) / (1 - alpha_t).
Optional MGDM token reweighting (Ye et al., arXiv 2410.14157; objective.token_reweight_gamma > 0): each
masked token's -log p with p = x_theta(x0 | x_t) is multiplied by alpha (1 - p)^gamma (a focal loss, not detached),
which weights the tokens the model finds hard more. The loss is then no longer a bound.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.objectives.base import NEG_INF, Objective
from dlm.process.absorbing import Absorbing, weighted_at_masks
from dlm.process.base import Capability
from dlm.registry import OBJECTIVES
from dlm.types import Prediction
from dlm.utils.cross_entropy import gathered, logsumexp_except, nll_from_logits


def subs(logits: Tensor, xt: Tensor, mask_id: int) -> Tensor:
    """SUBS (docs/masked.md): no mass on the mask, and unmasked positions carried over as point masses.

    logits (B, L, N) -> log x_theta (B, L, N) float32: log-softmax over the non-mask categories at a mask, 0 at x_t
    and NEG_INF elsewhere at a clean token. One (B, L, N) tensor, filled in place (autograd saves nothing of it).
    """
    logits = logits.float()
    log_probs = logits - logsumexp_except(logits, mask_id).unsqueeze(-1)
    log_probs[..., mask_id] = NEG_INF
    unmasked = xt != mask_id
    log_probs.masked_fill_(unmasked.unsqueeze(-1), NEG_INF)
    carried = torch.where(unmasked, 0.0, NEG_INF).to(log_probs.dtype).unsqueeze(-1)  # masked rows: x_t = m stays
    return log_probs.scatter_(-1, xt.unsqueeze(-1), carried)


def token_reweighting(log_probs: Tensor, x0: Tensor, alpha: float, gamma: float) -> Tensor:
    """MGDM's per-token weight alpha * (1 - x_theta(x0))^gamma.  log_probs (B, L, N), x0 (B, L) -> (B, L)."""
    return reweighting_from_nll(-gathered(log_probs, x0), alpha, gamma)


def reweighting_from_nll(nll: Tensor, alpha: float, gamma: float) -> Tensor:
    """The same weight from nll = -log x_theta(x0) (B, L): alpha * (-expm1(-nll))^gamma."""
    return alpha * (-torch.expm1(-nll)).pow(gamma)


@OBJECTIVES.register("masked_elbo")
class MaskedELBO(Objective):
    """MDLM / MD4. Time conditioning (on sigma) is optional; MDLM's default is off."""

    needs = frozenset({Capability.ABSORBING})  # SUBS carries clean tokens over: only masks may move

    def __init__(self, process: Absorbing, cfg):
        super().__init__(process, cfg)
        self.mask_id = process.mask_id
        self.discrete_steps = cfg.discrete_steps

    def predict(self, logits: Tensor, xt: Tensor, t: Tensor | None) -> Prediction:
        return Prediction(log_probs=subs(logits, xt, self.mask_id))

    @property
    def enumerates_mask_patterns(self) -> bool:
        return not self.time_conditioning

    def weight(self, t: Tensor) -> Tensor:
        schedule = self.process.schedule
        if self.discrete_steps <= 0:
            return schedule.masked_weight(t)
        s = (t - 1.0 / self.discrete_steps).clamp_min(0)
        alpha_t, alpha_s = schedule.alpha(t), schedule.alpha(s)
        return self.discrete_steps * (alpha_s - alpha_t) / (1 - alpha_t)

    def sample_times(self, n: int, *, generator, device) -> Tensor:
        t = super().sample_times(n, generator=generator, device=device)
        if self.discrete_steps > 0:  # snap onto the grid {1/T, ..., 1}
            T = self.discrete_steps
            t = ((torch.floor(t * T) + 1) / T).clamp_max(1.0)
        return t

    def token_log_probs(self, logits_fn, ids: Tensor, completion: Tensor, *, prompt_mask_prob: float = 0.0,
                        generator: torch.Generator | None = None) -> Tensor:
        """d1's one-step estimator (arXiv 2504.12216 §3.2; docs/posttraining.md#per-token-log-probabilities): every
        completion position is masked, every other position independently with probability prompt_mask_prob, and one
        forward pass at t = 1 gives log pi(o_k) ~ log x_theta(o_k | x_t) at each completion position k.
        ids, completion (B, L) -> (B, L) float32, 0 outside the completion."""
        u = torch.rand(ids.shape, generator=generator, device=ids.device)
        masked = completion.bool() | (u < prompt_mask_prob)
        xt = torch.where(masked, torch.full_like(ids, self.mask_id), ids)
        t = torch.ones(ids.shape[0], device=ids.device)
        nll = nll_from_logits(logits_fn(xt, t), ids, exclude=self.mask_id)
        return torch.where(completion.bool(), -nll.float(), torch.zeros_like(nll, dtype=torch.float32))

    def integrand(self, logits: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """-log x_theta(x0) at a mask under SUBS is logsumexp_{y != m} h_y - h_{x0}: no log-prob tensor needed."""
        nll = nll_from_logits(logits, x0, exclude=self.mask_id)
        per_token = weighted_at_masks(nll, xt, self.mask_id, self.weight(t))
        if self.cfg.token_reweight_gamma > 0:
            per_token = per_token * reweighting_from_nll(nll, self.cfg.token_reweight_alpha,
                                                         self.cfg.token_reweight_gamma)
        return per_token
