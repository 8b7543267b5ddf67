"""The GRPO objective with d1's per-token ratio (docs/posttraining.md#objective; arXiv 2504.12216 eq. 3,
arXiv 2402.03300 eq. 3):

    rho_ik = exp(log pi_theta(o_ik) - log pi_old(o_ik))
    L_ik   = -min(rho_ik A_i, clip(rho_ik, 1 - eps, 1 + eps) A_i) + beta KL_ik
    KL_ik  = exp(log pi_ref - log pi_theta) - (log pi_ref - log pi_theta) - 1      (the k3 estimator, >= 0)
    loss   = sum_ik L_ik c_ik / sum_ik c_ik                                           (token mean over the batch)
c_ik is 1 at the completion tokens. clip_eps = inf switches clipping off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class GRPOLoss:
    """loss: the scalar to back-propagate; kl: mean KL_ik over completion tokens (detached); clip_fraction: the
    fraction of completion tokens whose clipped term is the active one (detached)."""

    loss: Tensor
    kl: float
    clip_fraction: float


def grpo_loss(log_probs: Tensor, old_log_probs: Tensor, ref_log_probs: Tensor | None, advantages: Tensor,
              completion: Tensor, *, clip_eps: float, beta: float) -> GRPOLoss:
    """log_probs (n, L) with gradient; old_log_probs, ref_log_probs (n, L) detached (ref None when beta = 0);
    advantages (n,); completion bool (n, L)."""
    weight = completion.to(log_probs.dtype)
    advantage = advantages.to(log_probs.dtype).unsqueeze(1)
    ratio = torch.exp(log_probs - old_log_probs)
    unclipped, clipped = ratio * advantage, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * advantage
    per_token = -torch.minimum(unclipped, clipped)
    kl = torch.zeros_like(per_token)
    if beta != 0:
        delta = ref_log_probs - log_probs
        kl = torch.exp(delta) - delta - 1
        per_token = per_token + beta * kl
    tokens = weight.sum().clamp_min(1)
    active = (clipped < unclipped).to(weight.dtype)
    return GRPOLoss(loss=(per_token * weight).sum() / tokens, kl=float((kl.detach() * weight).sum() / tokens),
                    clip_fraction=float((active * weight).sum() / tokens))
