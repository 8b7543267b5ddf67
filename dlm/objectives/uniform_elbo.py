"""Uniform-state continuous-time ELBO: UDLM (arXiv 2412.10193) / Duo (arXiv 2506.10892); docs/uniform.md.

The integrand L_t is the process's own (Uniform.elbo_integrand, process/uniform.py, with its equation); this
objective is its parameterization: a plain log-softmax over the N tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.objectives.mean_elbo import MeanELBO
from dlm.process.base import Capability
from dlm.process.uniform import uniform_integrand
from dlm.registry import OBJECTIVES
from dlm.types import Prediction


@OBJECTIVES.register("uniform_elbo")
class UniformELBO(MeanELBO):
    """UDLM/Duo objective: the mean ELBO on the uniform process (plain log-softmax over the V tokens, no mask),
    conditioned on sigma(t) (UDLM default), with the closed form evaluated in the logits' dtype."""

    needs = frozenset({Capability.UNIFORM_PRIOR})
    default_process = "uniform"

    def predict(self, logits: Tensor, xt: Tensor, t: Tensor | None) -> Prediction:
        return Prediction(log_probs=torch.log_softmax(logits.float(), dim=-1))

    def integrand(self, logits: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        log_probs = torch.log_softmax(logits, dim=-1)  # in the logits' dtype (float32 in training)
        return uniform_integrand(log_probs, x0, xt, self.process.schedule, t).float()
