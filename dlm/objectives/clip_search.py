"""The data-driven clipped schedule of block diffusion (BD3LM, arXiv 2503.09573 §5.2, "clipped" noise schedules):
among candidate windows [beta, omega] of the training times, pick the one whose per-block NELBO estimates vary
least across a validation pass, a proxy for the variance of the training gradient. Reported likelihoods never use
it: they are on the unbiased window (objectives/block_diffusion.py).

Candidates (the reference's set): the full window [0, 1] and, for each width w, the windows [i, i + w] for
i = 0, delta, 2 delta, ... while i + w <= 1 (delta = 0.05 and widths 0.5 .. 0.9 give 11 + 9 + 7 + 5 + 3 + 1 = 36).
Score of a window: sum over validation batches of the unbiased variance of that batch's per-block estimates
(B x K values: each block's mean per-token loss under the window); the least score wins.

Under data parallelism the variance of a batch is over the estimates of every rank (the reference all-gathers
them first). Each rank keeps, per window and validation batch, the sufficient statistics (count, sum, sum of
squares) of its estimates; `finish(reduce=...)` sums them over ranks (one all-reduce) and the variance of batch n is
    (S2 - S1^2 / n) / (n - 1)     with n, S1, S2 summed over ranks,
which is torch.var of the gathered values (float64 statistics).
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


def batch_statistics(values: Tensor) -> Tensor:
    """(3,) float64 (count, sum, sum of squares) of any tensor of estimates: what ranks sum before the variance."""
    values = values.detach().double().flatten()
    return torch.stack([values.new_tensor(float(values.numel())), values.sum(), values.square().sum()])


def variance_scores(statistics: Tensor) -> Tensor:
    """(W, N, 3) statistics of W windows over N validation batches -> (W,) sum over batches of the unbiased
    variance; a batch with fewer than two values adds 0."""
    count, total, squares = statistics.unbind(-1)
    variance = (squares - total.square() / count.clamp_min(1)) / (count - 1).clamp_min(1)
    return torch.where(count > 1, variance, torch.zeros_like(variance)).sum(-1)


def least_variance_window(estimates: dict[Window, list[Tensor]], reduce: Callable[[Tensor], Tensor] | None = None
                          ) -> Window:
    """The window whose per-block estimates (one tensor per validation batch, any shape, e.g. (B, K)) have the
    least summed per-batch variance (torch.var, unbiased). reduce: sums a tensor over data-parallel ranks (None:
    one process); every rank must hold the same windows and number of batches."""
    if not estimates:
        raise ConfigError("clip search: no candidate window was evaluated")
    scores = variance_scores(window_statistics(estimates) if reduce is None else reduce(window_statistics(estimates)))
    return list(estimates)[int(scores.argmin())]


def window_statistics(estimates: dict[Window, list[Tensor]]) -> Tensor:
    """(W, N, 3) batch_statistics of each window's N validation batches, in the dict's window order."""
    return torch.stack([torch.stack([batch_statistics(batch) for batch in batches]) for batches in estimates.values()])


class ClipSearch:
    """One validation pass of the search: `add` each validation batch (every candidate window's per-block
    estimates, one two-stream forward per window), then `finish` sets the objective's training window to the
    least-variance one and returns a log line. Under data parallelism `finish(reduce=...)` pools the estimates of
    all ranks per validation batch (the reference's all-gather), so every rank picks the same window."""

    def __init__(self, objective: Any, windows: list[Window] | None = None):
        self.objective = objective
        self.estimates: dict[Window, list[Tensor]] = {w: [] for w in (windows or candidate_windows())}

    def add(self, logits_fn: Callable, x0: Tensor, generator: torch.Generator | None = None) -> None:
        for window, batches in self.estimates.items():
            batches.append(self.objective.block_estimates(logits_fn, x0, window, generator=generator).detach())

    def finish(self, reduce: Callable[[Tensor], Tensor] | None = None) -> str:
        """reduce: sums a float64 tensor over the ranks (train/parallel.py: all_reduce_sum); None: this process."""
        self.objective.clip = least_variance_window(self.estimates, reduce)
        return f"clip search: training window [{self.objective.clip[0]:g}, {self.objective.clip[1]:g}]"
