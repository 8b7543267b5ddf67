"""Cross-entropy terms read straight from backbone logits, without materializing log-probabilities.

Every training loss here needs, per position, a log-normalizer and one or two gathered logits:
    -log softmax(h)_y = logsumexp(h) - h_y,   and with a category m excluded (the mask under SUBS, ALGORITHMS §1.3)
    -log softmax(h_{-m})_y = logsumexp_{j != m}(h_j) - h_y.
`nll_from_logits` runs both through torch's fused cross-entropy (log_softmax + nll_loss, reduction "none"), in the
logits' own dtype: one kernel forward and one backward, where logsumexp + gather costs about ten passes over the
(B, L, N) logits (amax, sub, exp, sum, log, the gather's zero-filled scatter, ...), 3-5x the time at N = 70. With m
excluded its logit is set to -inf in one copy first (exp(-inf) = 0 exactly: the same normalizer). `logsumexp_except`
reduces over slices (views) of h, for the losses that need the normalizer itself (SEDD's score entropy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def logsumexp_except(logits: Tensor, index: int) -> Tensor:
    """logsumexp over the last dim of logits (..., N) leaving out category `index` -> (...)."""
    n = logits.shape[-1]
    if index == n - 1:
        return logits[..., :-1].logsumexp(-1)
    if index == 0:
        return logits[..., 1:].logsumexp(-1)
    return torch.logaddexp(logits[..., :index].logsumexp(-1), logits[..., index + 1:].logsumexp(-1))


def gathered(logits: Tensor, ids: Tensor) -> Tensor:
    """logits (..., N), ids (...) long -> logits[..., ids] (...)."""
    return logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1)


def nll_from_logits(logits: Tensor, target: Tensor, exclude: int | None = None) -> Tensor:
    """-log softmax(logits)[target] per position, (..., N), (...) -> (...); exclude: a category given no mass
    (never a target)."""
    if exclude is not None:
        logits = logits.index_fill(-1, torch.tensor([exclude], device=logits.device), float("-inf"))
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
    return nll.view(target.shape)
