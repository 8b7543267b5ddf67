"""Uniform-state continuous-time ELBO: UDLM (arXiv 2412.10193) / Duo (arXiv 2506.10892); docs/uniform.md.

The integrand L_t is the process's own (Uniform.elbo_integrand, process/uniform.py, with its equation); this
objective is its parameterization: a plain log-softmax over the N tokens. With objective.curriculum on, the first
training steps feed the backbone Duo's Gaussian relaxation of x_t instead of x_t (objectives/curriculum.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.config import ObjectiveConfig
from dlm.objectives.curriculum import Curriculum, relaxed_draw
from dlm.objectives.mean_elbo import MeanELBO
from dlm.process.base import Capability, Process
from dlm.process.uniform import uniform_integrand
from dlm.registry import OBJECTIVES
from dlm.types import Prediction


@OBJECTIVES.register("uniform_elbo")
class UniformELBO(MeanELBO):
    """UDLM/Duo objective: the mean ELBO on the uniform process (plain log-softmax over the V tokens, no mask),
    conditioned on sigma(t) (UDLM default), with the closed form evaluated in the logits' dtype."""

    needs = frozenset({Capability.UNIFORM_PRIOR})
    default_process = "uniform"
    supports_curriculum = True

    def __init__(self, process: Process, cfg: ObjectiveConfig):
        super().__init__(process, cfg)
        self.curriculum = Curriculum(cfg.curriculum)

    def training_draw(self, x0: Tensor, t: Tensor, step: int | None, *,
                      generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        """Inside the curriculum (a training step before objective.curriculum.end): z_t = argmax(w_t), exactly
        q_t(. | x0), and the relaxation softmax(w_t / tau_step) the backbone reads; elsewhere the process's draw."""
        tau = self.curriculum.temperature(step)
        if tau is None:
            return super().training_draw(x0, t, step, generator=generator)
        return relaxed_draw(x0, self.process.schedule.alpha(t.double()), tau, self.process.width, generator=generator)

    def predict(self, logits: Tensor, xt: Tensor, t: Tensor | None) -> Prediction:
        return Prediction(log_probs=torch.log_softmax(logits.float(), dim=-1))

    def integrand(self, logits: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        log_probs = torch.log_softmax(logits, dim=-1)  # in the logits' dtype (float32 in training)
        return uniform_integrand(log_probs, x0, xt, self.process.schedule, t).float()
