"""How many masked positions a parallel-decoding step commits, per row: the rules of docs/samplers.md.

Every rule sees one row's candidates already ranked, best first (`ordered` (B, L): the score that ranks them,
-inf past the row's masked positions), and returns k (B,); the step then commits the k best. The rules here are
the raw counts; Unmasking clamps them to [1, masked] (at least one token while a mask is left, as every reference
does).
    fixed quota   LLaDA's get_num_transfer_tokens (arXiv 2502.09992): n masks over S steps left give
                  floor(n / S) + 1[n mod S > 0] now, the same equal split as the whole schedule at once
    threshold     Fast-dLLM (arXiv 2505.22618, Alg. 1): every candidate with confidence c >= tau (ties at tau kept)
    factor        Fast-dLLM's factor rule, as its Theorem 1 intends: the largest n with (n + 1)(1 - c_(n)) <= f
    entropy bound EB sampler (Ben-Hamu et al., arXiv 2505.24857, Eq. 8): the largest k with S_k - M_k <= gamma,
                  S_k and M_k the sum and the max of the first k entropies
"""

from __future__ import annotations

import torch
from torch import Tensor


def num_transfer_tokens(masked: Tensor, steps: int) -> Tensor:
    """LLaDA get_num_transfer_tokens: mask counts (B,) -> tokens to commit per step (B, steps); rows sum to masked."""
    base, extra = masked // steps, masked % steps
    return base.unsqueeze(-1) + (torch.arange(steps, device=masked.device) < extra.unsqueeze(-1)).long()


def threshold_counts(ordered: Tensor, threshold: float) -> Tensor:
    """#{c >= threshold} per row of confidences ordered (B, L), best first: the ones above the threshold lead."""
    return (ordered >= threshold).sum(-1)


def factor_counts(ordered: Tensor, factor: float) -> Tensor:
    """The largest n with (n + 1)(1 - c_(n)) <= factor, c_(1) >= c_(2) >= ... the row's confidences (B, L).

    (n + 1)(1 - c_(n)) grows with n (both factors do), so the valid n form a prefix and k is their number. With
    factor 1 this is the condition (n + 1) eps <= 1 of Fast-dLLM's Theorem 1 (eps = the largest error 1 - c among
    the n tokens) under which greedy parallel decoding equals greedy joint decoding.
    """
    n = torch.arange(1, ordered.shape[-1] + 1, device=ordered.device, dtype=torch.float64)
    return ((n + 1) * (1 - ordered.double()) <= factor).sum(-1)


def entropy_bound_counts(entropies: Tensor, gamma: float) -> Tensor:
    """The largest k with S_k - M_k <= gamma, S_k / M_k the sum / max of the first k entropies (B, L) in commit
    order (0 past the masked positions). S_k - M_k never decreases with k (it grows by h_{k+1} or by M_k), so the
    valid k form a prefix and k is their number; the zeros past the masks keep it valid, so clamp to the masks."""
    h = entropies.double()
    return (h.cumsum(-1) - h.cummax(-1).values <= gamma).sum(-1)
