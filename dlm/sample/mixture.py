"""Fused draws under the uniform process: each stage law is a three-part mixture, so one uniform per
position picks the part and only positions that pick x_theta read their row of the vocabulary.

For a normalized x_theta (a mean model's log_probs, no temperature / top-k / top-p) every one-stage law at a
position with current token x = x_t is, up to normalization,
    p(y) = P 1(y = x) + A x_theta(y) / Z_A + U / M,        y in the N tokens (or in the N - 1 others: `excludes`),
with weights that need only p_x = x_theta(x) (process/uniform.py's *_parts; h = t - s, (c1, c2) = rate_parts):
    ancestral / analytic  (P, A, U) = posterior_parts(p_x, t, s)                       over all N, Z_A = 1
    Euler                 (P, A, U) = ([1 - h (c1 + c2)]_+, h c1, h c2)                 over y != x
    tau-leaping           (P, A, U) = (e^{-h Lam}, (1 - e^{-h Lam}) (c1, c2) / Lam)     over y != x, Lam = c1 + c2
    noise removal         (P, A, U) = (x0_posterior_parts(p_x, t), 0)                   over all N
(over y != x, Z_A = 1 - p_x and M = N - 1; the parts overlap at x in the first and last rows, which a mixture
allows). The draw: U1 ~ U(0, 1) per position picks the part by U1 (P + A + U) against the cumulative weights; the
positions that move use a second uniform U2 (drawn at every position, so an edited tape replays): x_theta by
inverse CDF (categorical.inverse_cdf, float64 sums; x zeroed when excluded), the uniform part as floor(U2 M)
(shifted past x when excluded). p_x needs one exp and one float64 sum per row (the exp in the prediction's dtype:
float32 for a real model, p_x to ~1e-7 relative, the logits' own precision), and the x_theta rows reuse that exp.
Score models, reshaped x_theta, argmax noise removal and the theta methods keep the explicit law (chunks.py);
tests rebuild stage_probs from (P, A, U) to 1e-12.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.sample.chunks import Law, PositionChunk, chunked_draw
from dlm.sample.context import SamplingContext
from dlm.utils.categorical import inverse_cdf


@dataclass
class Mixture:
    """Unnormalized weights (n,) float64 of the point mass at the current token, of x_theta and of the uniform law;
    excludes: the last two are restricted to the tokens other than the current one (rate laws)."""

    point: Tensor
    theta: Tensor
    uniform: Tensor
    excludes: bool = False


def current_probs(log_probs: Tensor, current: Tensor) -> tuple[Tensor, Tensor]:
    """Rows log x_theta (n, N) (unnormalized allowed) and current tokens (n,) -> (weights exp(log_probs) (n, N) in
    log_probs' dtype, p_x = x_theta(current) (n,) float64): one exp and one float64 row sum; rows whose plain exp
    overflows or vanishes are shifted by their maximum first."""
    weights = log_probs.exp()
    total = weights.sum(-1, dtype=torch.float64)
    bad = ~(torch.isfinite(total) & (total > 0))
    if bool(bad.any()):
        shifted = log_probs[bad] - log_probs[bad].max(-1, keepdim=True).values
        weights[bad] = shifted.exp()
        total[bad] = weights[bad].sum(-1, dtype=torch.float64)
    return weights, weights.gather(-1, current.unsqueeze(-1))[:, 0].double() / total


def mixture_draw(ctx: SamplingContext, predict: Callable, stage, hist: list[Tensor], memos: dict, law: Law,
                 active: Tensor, size: int) -> Tensor:
    """hist[-1] (B, L) redrawn at the active positions by the module docstring's rule where the stage has a
    mixture (stage.mixes, stage.mixture), else by its explicit law chunk by chunk. The denoiser runs once either
    way. U1 and U2 are drawn for all positions up front; then each chunk of rows is read once."""
    predictions = memos.setdefault("predictions", {})
    flat = active.flatten().nonzero()[:, 0]
    # the full-state output (B, L, N), computed once and kept in predictions for the fallback too
    prediction = PositionChunk(ctx, predict, hist, flat[:0], predictions).full_prediction(0, stage.t)
    size = max(len(flat), 1) if size < 0 else max(size, 1)
    if not (len(flat) and stage.mixes(ctx.process, prediction)):
        return chunked_draw(ctx, predict, hist, memos, law, active, size, predictions)
    log_probs = prediction.log_probs.flatten(0, 1)  # (B L, N)
    every = len(flat) == log_probs.shape[0]  # then chunks are views, no row copies
    current = hist[-1].flatten()[flat]
    rows = flat // hist[0].shape[1]
    u1 = ctx.uniform((len(flat),), flat.device, rows=rows)  # the part
    u2 = ctx.uniform((len(flat),), flat.device, rows=rows)  # the token; at every position: tape shapes fixed by (B, L)
    tokens = torch.empty_like(current)
    for start in range(0, len(flat), size):
        part = slice(start, start + size)
        chunk = log_probs[start:start + size] if every else log_probs.index_select(0, flat[part])
        tokens[part] = _mixture_tokens(stage, ctx.process, chunk, current[part], u1[part], u2[part])
    out = hist[-1].clone()
    out.view(-1)[flat] = tokens
    return out


def _mixture_tokens(stage, process, log_probs: Tensor, current: Tensor, u1: Tensor, u2: Tensor) -> Tensor:
    """One chunk: rows (n, N), current tokens and both uniforms (n,) -> the drawn tokens (n,)."""
    weights, p_x = current_probs(log_probs, current)
    mixture = stage.mixture(process, p_x)
    v = u1 * (mixture.point + mixture.theta + mixture.uniform)
    pointed = (v < mixture.point) | (mixture.theta + mixture.uniform == 0)
    thetas = ~pointed & ((v < mixture.point + mixture.theta) | (mixture.uniform == 0))
    tokens = current.clone()
    width, excludes = log_probs.shape[-1], mixture.excludes
    spread = (~pointed & ~thetas).nonzero()[:, 0]  # the uniform part: floor(U2 M), past x when it is excluded
    pick = (u2[spread] * (width - excludes)).long().clamp_max(width - 1 - excludes)
    tokens[spread] = pick + (excludes & (pick >= current[spread]))
    chosen = thetas.nonzero()[:, 0]
    if len(chosen):
        rows = weights if len(chosen) == len(weights) else weights.index_select(0, chosen)  # x_theta rows
        if excludes:
            rows.scatter_(-1, current[chosen].unsqueeze(-1), 0.0)
        tokens[chosen] = inverse_cdf(rows, u2[chosen])
    return tokens
