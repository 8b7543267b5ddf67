"""Fused draws at masked positions: one uniform decides stay / leave, only the leavers need a law over V.

Under absorbing, every stage law of a per-position sampler at a position whose origin is the mask is a two-part
mixture, and at a clean origin a point mass (a clean token never moves):
    p(x = m) = w,    p(x = y) = (1 - w) q(y)  (y != m),     q >= 0, q(m) = 0.
On the x_theta path (the sampler reads a normalized x_theta; Sampler.uses_x0) w is a scalar of the schedule:
    ancestral / analytic   w = (1 - alpha_s) / (1 - alpha_t),                 q = x_theta      (MDLM posterior)
    Euler                  w = [1 - h Lam]_+ / ([1 - h Lam]_+ + h Lam),        q = x_theta
    tau-leaping            w = exp(-h Lam),                                    q = x_theta
with Lam = -alpha'_t / (1 - alpha_t) (Schedule.masked_weight), the total reverse rate out of the mask when x_theta
sums to one, and theta-stage 1 is tau-leaping over theta h. Where w needs the row (score models: Lam = sigma' sum_y
s_y; theta-stage 2's clipped mixture of two predictions), the sampler gives a cheap lower bound instead (0, or
exp(-tau Lam_max) from an upper bound of the clipped rates) and the exact (w, q) is computed only where it matters.

The draw, per stage: U ~ U(0, 1) per masked origin (row-major); the position stays masked iff U < w. Rows with
U < bound <= w stay without any V-wide work; the others (the candidates, about the leavers) get their exact (w, q)
a chunk of positions at a time (chunks.py's PositionChunk, so the network output is shared), and each leaver draws
its token by inverse CDF with one more uniform (categorical.inverse_cdf, float64 cumulative sums). The decision is
the same as if w were known everywhere, so samples depend neither on the bound nor on the chunk size. A stage whose
masks all leave (noise removal) skips the decision uniforms. The explicit laws (stage_probs) stay the reference:
exact.py composes them and tests check (w, q) against them to 1e-12.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from dlm.sample.chunks import PositionChunk
from dlm.sample.context import SamplingContext
from dlm.sample.mixture import Mixture
from dlm.types import Prediction
from dlm.utils.categorical import inverse_cdf


class MaskStage(ABC):
    """One stage of a step (or the noise removal) seen from masked origins; t is the time of hist[0]'s prediction."""

    t: float
    always_leaves: bool = False  # w = 0 everywhere: no decision uniforms

    def origin(self, hist: list[Tensor]) -> Tensor:
        """The state the stage's law starts from (B, L): its stay state. hist[-1] unless the stage restarts."""
        return hist[-1]

    @abstractmethod
    def stay_bound(self, ctx: SamplingContext, hist: list[Tensor], prediction: Prediction) -> Tensor | float:
        """A lower bound on w at every masked origin, scalar or (B, L), from no V-wide work; prediction: the full
        x_t prediction at t (only its kind may be read)."""

    @abstractmethod
    def mask_law(self, ctx: PositionChunk, hist: list[Tensor], prediction: Prediction) -> tuple[Tensor, Tensor]:
        """The exact (w (n,), q (n, N)) at a chunk of masked origins (hist entries (n, 1)); q unnormalized."""

    def mixes(self, process, prediction: Prediction) -> bool:
        """Uniform process (mixture.py): whether the stage law is a Mixture, read off a normalized x_theta (a mean
        model's log_probs, not reshaped) while alpha_t < 1 (else x_t pins x0 and project_x0 is not the identity)."""
        alpha = float(process.schedule.alpha(torch.tensor(self.t, dtype=torch.float64)))
        return prediction.log_probs is not None and not self.sampler.reshaped() and alpha < 1

    def mixture(self, process, p_x: Tensor) -> Mixture | None:
        """The stage law as a Mixture from p_x = x_theta(x_t) (n,) float64, or None when it is none."""
        return None


class StepStage(MaskStage):
    """Stage len(hist) - 1 of a sampler's step t -> s: the sampler's origin / stay / stay_bound, else stage_probs."""

    def __init__(self, sampler, t: float, s: float):
        self.sampler, self.t, self.s = sampler, t, s

    def origin(self, hist):
        return self.sampler.origin(hist)

    def mixes(self, process, prediction):
        probe = torch.zeros(0, dtype=torch.float64)  # the sampler says whether it has a mixture at all
        return super().mixes(process, prediction) and self.mixture(process, probe) is not None

    def mixture(self, process, p_x):
        return self.sampler.uniform_mixture(process, p_x, self.t, self.s)

    def stay_bound(self, ctx, hist, prediction):
        if not self.sampler.uses_x0(prediction):
            return 0.0
        return self.sampler.stay_bound(ctx.process, hist, self.t, self.s)

    def mask_law(self, ctx, hist, prediction):
        law = self.sampler.mask_law(ctx, hist, self.t, self.s) if self.sampler.uses_x0(prediction) else None
        if law is None:
            return split_at_mask(self.sampler.stage_probs(ctx, hist, {}, self.t, self.s), ctx.process.mask_id)
        return law


class FinalStage(MaskStage):
    """Noise removal at t: every mask leaves. At a mask the Bayes posterior normalize(q_t(m | x0) x_theta) is
    x_theta itself (q_t(m | x0) = 1 - alpha_t for every clean x0), so q = final_rule(x_theta)."""

    always_leaves = True

    def __init__(self, sampler, t: float):
        self.sampler, self.t = sampler, t

    def stay_bound(self, ctx, hist, prediction):
        return 0.0

    def mixes(self, process, prediction):
        return super().mixes(process, prediction) and self.sampler.final == "sample"

    def mixture(self, process, p_x):
        point, theta = process.x0_posterior_parts(p_x, self.t)
        return Mixture(point, theta, torch.zeros_like(p_x))

    def mask_law(self, ctx, hist, prediction):
        q = self.sampler.final_rule(self.sampler.masked_x0(ctx, hist[0], self.t))
        return torch.zeros(q.shape[0], dtype=torch.float64, device=q.device), q


def split_at_mask(probs: Tensor, mask_id: int) -> tuple[Tensor, Tensor]:
    """An explicit law (n, 1, N) (unnormalized, negatives clipped) -> (w (n,), q (n, N) with q[:, m] = 0)."""
    law = probs[:, 0].double().clamp_min(0)
    w = law[:, mask_id] / law.sum(-1)
    return w, law.index_fill(-1, torch.tensor([mask_id], device=law.device), 0.0)


def fused_draw(ctx: SamplingContext, predict, stage: MaskStage, hist: list[Tensor], memos: dict, active: Tensor,
               size: int) -> Tensor:
    """hist[-1] (B, L) redrawn at the active positions (bool (B, L)): masked origins by the fused rule (module
    docstring), clean origins keep their token. memos["predictions"] shares network outputs across the stages of a
    step; the denoiser runs at least once, as the whole-law path would. size: positions per chunk (< 0: all)."""
    mask_id, width = ctx.process.mask_id, hist[0].shape[1]
    origin = stage.origin(hist)
    out = torch.where(active, origin, hist[-1])
    flat = (active & (origin == mask_id)).flatten().nonzero()[:, 0]
    predictions = memos.setdefault("predictions", {})
    prediction = PositionChunk(ctx, predict, hist, flat[:0], predictions).full_prediction(0, stage.t)  # (B, L, N)
    if stage.always_leaves:
        u = torch.ones(len(flat), dtype=torch.float64, device=flat.device)
        candidates = flat
    else:
        u = ctx.uniform((len(flat),), flat.device, rows=flat // width)
        bound = stage.stay_bound(ctx, hist, prediction)
        if isinstance(bound, Tensor):
            bound = bound.flatten()[flat]
        pending = u >= bound
        candidates, u = flat[pending], u[pending]
        out.view(-1)[flat[~pending]] = mask_id
    size = len(candidates) if size < 0 else size
    for start in range(0, max(len(candidates), 1), max(size, 1)):
        chunk = PositionChunk(ctx, predict, hist, candidates[start:start + size], predictions)
        w, q = stage.mask_law(chunk, chunk.hist, prediction)
        leave = u[start:start + size] >= w
        tokens = torch.full(leave.shape, mask_id, dtype=torch.long, device=leave.device)
        leavers = leave.nonzero()[:, 0]
        if len(leavers):
            v = chunk.uniform((len(leavers),), leave.device, rows=leavers)
            tokens[leavers] = inverse_cdf(q if len(leavers) == len(q) else q.index_select(0, leavers), v)
        out.view(-1)[chunk.flat] = tokens
    return out
