"""The per-position divergences a distilled student minimizes against its target (SDTT, arXiv 2410.21035 §3;
Duo's DCD, arXiv 2506.10892 §4; docs/distillation.md#divergences).

Both laws are over the clean columns only (a masked model's SUBS output puts no mass on the mask). With
s = log p_student and q = log p_target, per position (rows of (M, N)):
    kl_bwd  sum_v e^s (s - q)               reverse KL(student || target): the reference's default ("kld")
    kl_fwd  sum_v e^q (q - s)               forward KL(target || student); its minimizer is E[target]
    mse     mean_v (s - q)^2                in log-probability space, as the reference computes it
    tvd     1/2 sum_v |e^s - e^q|           total variation (the reference's "tvd" is an L1 between log-probs)
The loss is their mean over the scored positions.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from dlm.registry import ConfigError

LOG_FLOOR = -1e6  # log 0 of a target, as the reference clamps it: finite, so 0 * log 0 stays 0


def _kl_bwd(s: Tensor, q: Tensor) -> Tensor:
    return (s.exp() * (s - q)).sum(-1)


def _kl_fwd(s: Tensor, q: Tensor) -> Tensor:
    return (q.exp() * (q - s)).sum(-1)


def _mse(s: Tensor, q: Tensor) -> Tensor:
    return (s - q).pow(2).mean(-1)


def _tvd(s: Tensor, q: Tensor) -> Tensor:
    return 0.5 * (s.exp() - q.exp()).abs().sum(-1)


DIVERGENCES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "kl_bwd": _kl_bwd, "kl_fwd": _kl_fwd, "mse": _mse, "tvd": _tvd}


def check_divergence(name: str) -> None:
    if name not in DIVERGENCES:
        raise ConfigError(f"divergence '{name}' is not one of: {', '.join(DIVERGENCES)}")


def divergence(name: str, student_log_probs: Tensor, target_probs: Tensor) -> Tensor:
    """Per-position divergence (M,) between the student's log-probabilities (M, N) and the target's probabilities
    (M, N) over the same N clean columns; -inf / 0 entries become LOG_FLOOR so that they contribute nothing to a KL."""
    s = student_log_probs.clamp_min(LOG_FLOOR)
    q = target_probs.to(s.dtype).log().clamp_min(LOG_FLOOR)
    return DIVERGENCES[name](s, q)
