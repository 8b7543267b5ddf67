"""The data-driven clipped schedule of block diffusion (BD3LM, arXiv 2503.09573 §5.2, "clipped" noise schedules):
among candidate windows [beta, omega] of the training times, pick the one whose per-block NELBO estimates vary
least across a validation pass, a proxy for the variance of the training gradient. Reported likelihoods never use
it: they are on the unbiased window (objectives/block_diffusion.py).

Candidates (the reference's set): the full window [0, 1] and, for each width w, the windows [i, i + w] for
i = 0, delta, 2 delta, ... while i + w <= 1 (delta = 0.05 and widths 0.5 .. 0.9 give 11 + 9 + 7 + 5 + 3 + 1 = 36).
Score of a window: sum over validation batches of the unbiased variance of that batch's per-block estimates
(B x K values: each block's mean per-token loss under the window); the least score wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from dlm.registry import ConfigError

Window = tuple[float, float]
PAPER_WIDTHS = (0.5, 0.6, 0.7, 0.8, 0.9)


def candidate_windows(widths: tuple[float, ...] = PAPER_WIDTHS, delta: float = 0.05) -> list[Window]:
    """[(0, 1)] and every [i, i + w] on the grid i = k delta with i + w <= 1 (rounded to 1e-9: no float drift)."""
    if not 0 < delta <= 1 or any(not 0 < w <= 1 for w in widths):
        raise ConfigError(f"clip search: need 0 < delta <= 1 and widths in (0, 1], got {delta}, {widths}")
    windows = [(0.0, 1.0)]
    for width in widths:
        steps = int(round((1 - width) / delta, 9))
        windows += [(round(k * delta, 9), round(k * delta + width, 9)) for k in range(steps + 1)]
    return list(dict.fromkeys(windows))


def least_variance_window(estimates: dict[Window, list[Tensor]]) -> Window:
    """The window whose per-block estimates (one tensor per validation batch, any shape, e.g. (B, K)) have the
    least summed per-batch variance (torch.var, unbiased)."""
    if not estimates:
        raise ConfigError("clip search: no candidate window was evaluated")
    scores = {window: sum(float(batch.double().var()) for batch in batches) for window, batches in estimates.items()}
    return min(scores, key=scores.get)


class ClipSearch:
    """One validation pass of the search: `add` each validation batch (every candidate window's per-block
    estimates, one two-stream forward per window), then `finish` sets the objective's training window to the
    least-variance one and returns a log line. Per process: under data parallelism each rank picks from its own
    shard (the reference gathers the estimates over ranks first)."""

    def __init__(self, objective: Any, windows: list[Window] | None = None):
        self.objective = objective
        self.estimates: dict[Window, list[Tensor]] = {w: [] for w in (windows or candidate_windows())}

    def add(self, logits_fn: Callable, x0: Tensor, generator: torch.Generator | None = None) -> None:
        for window, batches in self.estimates.items():
            batches.append(self.objective.block_estimates(logits_fn, x0, window, generator=generator).detach())

    def finish(self) -> str:
        self.objective.clip = least_variance_window(self.estimates)
        return f"clip search: training window [{self.objective.clip[0]:g}, {self.objective.clip[1]:g}]"
