"""SEDD's analytic ("Tweedie tau-leaping") step (arXiv 2310.16834, sampling.py AnalyticPredictor; docs/samplers.md).

With Delta sigma = sigma(t) - sigma(s), i.e. e^{Delta sigma} = alpha_s / alpha_t, and the forward generator
Q = 1 pi^T - I of a mixture process, the step draws each position from
    p(x_s = y) ∝ [exp(-Delta sigma Q) s]_y * q_{t|s}(x_t | y),
    [exp(-Delta sigma Q) s]_y = e^{Delta sigma} s_y + (1 - e^{Delta sigma}) pi_y sum_z s_z      (staggered score)
with q_{t|s}(x_t | y) = process.kernel(x_t, alpha_t / alpha_s) (transp_transition); negative entries are clipped.
For a mean-parameterized denoiser, s = bar / bar_{x_t} with bar = alpha_t x_theta + (1 - alpha_t) pi (sum 1) gives
    staggered(bar) = alpha_s x_theta + (1 - alpha_s) pi = marginal(x_theta, alpha_s),
so the step *is* the ancestral posterior (for absorbing: the MDLM posterior); we use that
form for mean models (finite at alpha_t = 0) and the staggered score for score models (SEDD).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from dlm.process.absorbing import Absorbing
from dlm.process.uniform import Uniform
from dlm.registry import SAMPLERS
from dlm.sample.base import Sampler, _times
from dlm.sample.context import SamplingContext
from dlm.sample.mixture import Mixture


@SAMPLERS.register("analytic")
@dataclass
class Analytic(Sampler):
    """One NFE per step, driven by the concrete score (native for SEDD; converted for mean models)."""

    def stage_probs(self, ctx: SamplingContext, hist: list[Tensor], memo: dict, t: float, s: float) -> Tensor:
        xt = hist[0]
        prediction = self.predict(ctx, xt, t)
        time_t, time_s = _times(t, xt), _times(s, xt)
        if self.uses_x0(prediction):
            return ctx.process.posterior(xt, self.x0_probs(ctx, xt, t, prediction), time_t, time_s)
        return staggered_step(ctx.process, prediction.log_score.double().exp(), xt, time_t, time_s)

    def stay(self, process: Absorbing, hist: list[Tensor], t: float, s: float) -> float:
        return process.mask_stay(t, s)  # the x_theta path is the ancestral posterior

    def uniform_mixture(self, process: Uniform, p_x: Tensor, t: float, s: float) -> Mixture:
        return Mixture(*process.posterior_parts(p_x, t, s))  # the x_theta path is the ancestral posterior


def staggered_step(process, score: Tensor, xt: Tensor, t: Tensor, s: Tensor) -> Tensor:
    """Unnormalized SEDD analytic law (B, L, N) from a concrete score (B, L, N); t, s float64 (B,)."""
    alpha_t, alpha_s = process.schedule.alpha(t), process.schedule.alpha(s)
    growth = (alpha_s / alpha_t).reshape(-1, 1, 1)  # e^{Delta sigma}
    staggered = growth * score + (1 - growth) * process.limit(score) * score.sum(-1, keepdim=True)
    return staggered * process.kernel(xt, alpha_t / alpha_s)
