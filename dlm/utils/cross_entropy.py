"""Cross-entropy terms read straight from backbone logits, without materializing log-probabilities.

Every training loss here needs, per position, a log-normalizer and one or two gathered logits:
    -log softmax(h)_y = logsumexp(h) - h_y,   and with a category m excluded (the mask under SUBS, ALGORITHMS §1.3)
    -log softmax(h_{-m})_y = logsumexp_{j != m}(h_j) - h_y.
logsumexp reads h in its own dtype (float32 logits stay float32) and its backward is softmax(h) * grad, so a loss
built from these keeps one (B, L, N) tensor alive for autograd (the logits) instead of log-probs, one-hot carries and
float64 copies. Excluding m uses slices (views) of h, not a masked copy.
"""

from __future__ import annotations

import torch
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
    """-log softmax(logits)[target] per position, (..., N), (...) -> (...); exclude: a category given no mass."""
    normalizer = logits.logsumexp(-1) if exclude is None else logsumexp_except(logits, exclude)
    return normalizer - gathered(logits, target)
