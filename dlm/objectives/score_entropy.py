"""Score entropy (SEDD, arXiv 2310.16834; docs/score_entropy.md) on any process that defines it (absorbing, uniform).

The model outputs a log concrete score s_y ~ log p_t(y)/p_t(x_t) with s_{x_t} = 0. Per position the loss is
sigma'(t) * SE(s; x0, x_t, sigma) (Process.score_entropy_integrand); SE is the graph's own, with its equation in
process/absorbing.py and process/uniform.py. scale_by_sigma applies the process's prior scaling of the network
output (Process.scale_log_score: for absorbing h - log expm1(sigma) - log(N - 1); the identity for uniform).
"""

from __future__ import annotations

from torch import Tensor

from dlm.objectives.base import Objective
from dlm.process.base import Capability, Process
from dlm.registry import OBJECTIVES, ConfigError
from dlm.types import Prediction


@OBJECTIVES.register("score_entropy")
class ScoreEntropy(Objective):
    """SEDD. Conditioned on sigma (required: the score depends on t)."""

    needs = frozenset({Capability.SCORE_ENTROPY})
    default_time_conditioning = True
    default_sampler = "analytic"

    def __init__(self, process: Process, cfg, scale_by_sigma: bool = True):
        if not cfg.time_conditioning:
            raise ConfigError("objective 'score_entropy' needs objective.time_conditioning=true (score depends on t)")
        super().__init__(process, cfg)
        self.scale_by_sigma = scale_by_sigma

    def predict(self, logits: Tensor, xt: Tensor, t: Tensor | None) -> Prediction:
        h = logits.float()
        sigma = self.process.schedule.sigma(t.float())
        h = self.process.scale_log_score(h, sigma) if self.scale_by_sigma else h.clone()
        return Prediction(log_score=h.scatter_(-1, xt.unsqueeze(-1), 0.0))  # one (B, L, N) copy, filled in place

    def integrand(self, logits: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """From the raw output: the scaling enters as a per-sequence offset of the score entropy's reductions, and
        s_{x_t} = 0 is read by convention, so neither the scaled nor the scattered (B, L, N) tensor is formed."""
        offset = self.process.log_score_offset(self.process.schedule.sigma(t.float()), logits.shape[-1]) \
            if self.scale_by_sigma else None
        return self.process.score_entropy_integrand(logits, x0, xt, t, offset=offset)
