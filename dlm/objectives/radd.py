"""RADD: time-independent absorbing diffusion, trained with the lambda-DCE loss (arXiv 2406.03736; docs/masked.md#radd).

The model c_theta(v | x_t) has no time input. With lambda ~ U(0, 1) (stratified) each token is masked with
probability lambda, and
    loss = sum_{l masked} -log c_theta(x0^l | x_t) / lambda          (1/lambda formed in float64),
which in expectation equals the t-DCE / any-order-AR bound; it is the masked ELBO with alpha = 1 - lambda,
so sampling may use any schedule: the denoiser does not depend on t.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.objectives.base import reduce_per_token
from dlm.objectives.masked_elbo import MaskedELBO
from dlm.process.absorbing import weighted_at_masks
from dlm.registry import OBJECTIVES, ConfigError
from dlm.types import LossOutput
from dlm.utils.cross_entropy import nll_from_logits
from dlm.utils.shapes import per_sequence


@OBJECTIVES.register("radd")
class RADD(MaskedELBO):
    def __init__(self, process, cfg):
        if cfg.time_conditioning:
            raise ConfigError("objective 'radd' is time-independent: set objective.time_conditioning=false")
        if cfg.condition_prefix or cfg.token_reweight_gamma:
            raise ConfigError("objective 'radd' supports neither condition_prefix nor token reweighting; "
                              "use masked_elbo")
        super().__init__(process, cfg)

    def loss(self, logits_fn, x0: Tensor, attention_mask: Tensor | None = None, *,
             generator: torch.Generator | None = None, condition_mask: Tensor | None = None,
             step: int | None = None) -> LossOutput:
        if condition_mask is not None:
            raise ConfigError("objective 'radd' does not train on prompts (condition_mask); use masked_elbo")
        lam = self.time_sampler.u(x0.shape[0], generator=generator, device=x0.device)
        lam = lam.clamp_min(self.cfg.sampling_eps)
        move = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=torch.float64) < per_sequence(lam, 2)
        xt = torch.where(move, torch.full_like(x0, self.mask_id), x0)
        nll = nll_from_logits(logits_fn(xt, lam.float()), x0, exclude=self.mask_id)
        per_token = weighted_at_masks(nll, xt, self.mask_id, 1.0 / lam)  # 1 / lambda formed in float64
        return reduce_per_token(per_token, attention_mask, per_row=self.cfg.loss_per_row)
