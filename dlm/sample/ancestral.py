"""Ancestral (D3PM / MDLM) reverse step, and its caching variant (MDLM ddpm_cache, RADD).

x_s ~ p_theta(x_s | x_t) = normalize( q(x_t | x_s) * sum_x0 q(x_s | x0) x_theta(x0) )      (process.posterior)
For absorbing at a mask this is [(alpha_s - alpha_t) x_theta + (1 - alpha_s) e_m] / (1 - alpha_t) (MDLM, arXiv
2406.07524); for uniform it is the UDLM/Duo posterior (arXiv 2412.10193 / 2506.10892; docs/uniform.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from dlm.process.absorbing import Absorbing
from dlm.process.base import Capability
from dlm.process.uniform import Uniform
from dlm.registry import SAMPLERS
from dlm.sample.base import Sampler, _times
from dlm.sample.context import SamplingContext
from dlm.sample.mixture import Mixture
from dlm.types import Prediction


@SAMPLERS.register("ancestral")
@dataclass
class Ancestral(Sampler):
    """One NFE per step; exact per position for any step size given the true x_theta. Runs on every process: it reads
    only the posterior, which every Process defines."""

    needs = frozenset()

    def uses_x0(self, prediction: Prediction) -> bool:
        return True  # the posterior reads x_theta (score models through x0_from_score)

    def stay(self, process: Absorbing, hist: list[Tensor], t: float, s: float) -> float:
        return process.mask_stay(t, s)

    def uniform_mixture(self, process: Uniform, p_x: Tensor, t: float, s: float) -> Mixture:
        return Mixture(*process.posterior_parts(p_x, t, s))

    def stage_probs(self, ctx: SamplingContext, hist: list[Tensor], memo: dict, t: float, s: float) -> Tensor:
        xt = hist[0]
        return ctx.process.posterior(xt, self.x0_probs(ctx, xt, t), _times(t, xt), _times(s, xt))


@SAMPLERS.register("ancestral_cache")
@dataclass
class AncestralCache(Ancestral):
    """Ancestral, re-evaluating the denoiser only for rows whose x_t changed since its last evaluation (RADD
    arXiv 2406.03736: most steps unmask nothing at large step counts). Same samples as `ancestral` for the
    same noise when the denoiser ignores t, which the exact masked x_theta = p(x0 | unmasked tokens) does; a
    time-conditioned masked model gets a prediction from an earlier t. Masked processes only: the uniform x_theta
    depends on t by construction (on the toy, reuse leaves TV 0.12 where ancestral reaches 0.0125). Count the
    saving with NFECounter."""

    needs = frozenset({Capability.ABSORBING})
    evaluates_row_subsets = True

    def predict(self, ctx: SamplingContext, xt: Tensor, t: float) -> Prediction:
        stored = ctx.state.get("ancestral_cache")
        changed = None if stored is None or stored[0].shape != xt.shape else (stored[0] != xt).any(-1)
        if changed is None or bool(changed.all()):  # nothing to reuse: no merge, no extra copy of the logits
            prediction = ctx.predict(xt, t)
        elif bool(changed.any()):
            fresh, prediction = ctx.predict(xt[changed], t, rows=changed), stored[1]
            prediction = Prediction(log_probs=_merge(prediction.log_probs, fresh.log_probs, changed),
                                    log_score=_merge(prediction.log_score, fresh.log_score, changed))
        else:
            return stored[1]
        ctx.state["ancestral_cache"] = (xt.clone(), prediction)
        return prediction


def _merge(old: Tensor | None, new: Tensor | None, rows: Tensor) -> Tensor | None:
    if old is None:
        return None
    merged = old.clone()
    merged[rows] = new.to(old.dtype)
    return merged
