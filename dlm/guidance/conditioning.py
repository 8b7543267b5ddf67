"""Removing the condition: what makes one network both conditional and unconditional (classifier-free guidance).

Training with condition dropout (Ho & Salimans, arXiv 2207.12598; the guidance repo's cond_dropout, Duo's
class_dropout_p = 0.1): each row's label is replaced by the null class with probability p, so
    loss = E[ L(x0; label) ]  with  label <- null  w.p. p,
trains x(. | x_t, c) and x(. | x_t, null) in one model. Prompt conditioning needs no dropout for a masked model
pretrained on random masks: a masked-out prompt is an input it has seen (SMDM's unsupervised CFG, arXiv 2410.18514;
its SFT variant masks the whole prompt with probability p, which mask_prompt with a per-row mask does).
"""

from __future__ import annotations

import torch
from torch import Tensor


def drop_labels(label: Tensor, p: float, null: int, *, generator: torch.Generator | None = None) -> Tensor:
    """label (B,) long -> a copy with each entry replaced by `null` (num_classes) independently with probability p."""
    drop = torch.rand(label.shape, generator=generator, device=label.device, dtype=torch.float64) < p
    return torch.where(drop, torch.full_like(label, null), label)


def mask_prompt(xt: Tensor, prompt_mask: Tensor, mask_id: int) -> Tensor:
    """xt (B, L) with the prompt positions (prompt_mask, bool (B, L) or (1, L)) set to mask_id: the unconditional
    input of unsupervised CFG."""
    return torch.where(prompt_mask.to(xt.device).bool(), torch.full_like(xt, mask_id), xt)
