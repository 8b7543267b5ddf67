"""The continuous-time ELBO of a mean-parameterized denoiser on ANY process (D3PM/MD4 view, arXiv 2107.03006,
2406.04329): x_theta = a softmax over the clean tokens (no mass on a mask state), and the loss is the process's own
ELBO integrand (Process.elbo_integrand), whose t-average bounds -log p(x0):
    -log p(x0) <= int_0^1 E_{x_t ~ q_t(. | x0)} sum_l L_t^l(x_theta; x0, x_t) dt  (+ the process's prior term).
It is what trains a process that has no objective of its own, e.g. GIDD's hybrid noise (process/gidd.py, arXiv
2503.04482, docs/gidd.md), which is its default.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.objectives.base import NEG_INF, Objective
from dlm.registry import OBJECTIVES
from dlm.types import Prediction


@OBJECTIVES.register("mean_elbo")
class MeanELBO(Objective):
    """Mean parameterization on any process, conditioned on sigma(t): the noise law of a hybrid process changes with
    t, so the denoiser needs to know it."""

    default_process = "gidd"
    default_time_conditioning = True

    def predict(self, logits: Tensor, xt: Tensor, t: Tensor | None) -> Prediction:
        return Prediction(log_probs=self.clean_log_softmax(logits.float()))

    def clean_log_softmax(self, logits: Tensor) -> Tensor:
        """log-softmax over the categories clean data can take; NEG_INF (finite) on the others.  (B, L, N)."""
        clean = self.process.clean_mask(logits)
        return torch.log_softmax(logits.masked_fill(~clean, NEG_INF), dim=-1)

    def integrand(self, logits: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        return self.process.elbo_integrand(self.clean_log_softmax(logits), x0, xt, t).float()
