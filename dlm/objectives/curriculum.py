"""Duo's curriculum for training uniform-state models (Sahoo et al., arXiv 2506.10892 §3.2 "Curriculum learning";
docs/uniform.md#curriculum).

Duo's link (process/gaussian_link.py): for clean x, eps ~ N(0, I_N) and mu_t = mu_of_alpha(alpha_t) of the model's
own schedule, the variance-preserving latent
    w_t = (mu_t e_x + eps) / sqrt(1 + mu_t^2)        (Duo's alpha~_t e_x + sigma~_t eps, alpha~^2 + sigma~^2 = 1)
has z_t = argmax(w_t) ~ q_t(. | x) = alpha_t e_x + (1 - alpha_t)/N exactly. During the curriculum the backbone reads
the relaxation softmax(w_t / tau) (a soft embedding: model/transformer.py) instead of the token z_t, and the loss is
the UDLM ELBO evaluated at the discrete z_t with the schedule's alpha_t, alpha'_t. As tau -> 0 the relaxation is
one_hot(z_t), i.e. the plain loss at the same z_t. Temperature, at training step k (0-based: k optimizer steps done):
    log10 tau_k = a + (b - a) clamp((k - start) / (end - start), 0, 1),    a, b = tau_log10_start, tau_log10_end,
for k < end; steps k >= end, and every loss without a training step (validation, evaluation), are the plain
discrete ELBO.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.config import CurriculumConfig
from dlm.process.gaussian_link import mu_of_alpha
from dlm.registry import ConfigError


class Curriculum:
    """The temperature schedule of objective.curriculum; checks the config (one-line ConfigError)."""

    def __init__(self, cfg: CurriculumConfig):
        if cfg.start < 0 or cfg.end < 0:
            raise ConfigError(f"objective.curriculum.start={cfg.start} and .end={cfg.end} must be >= 0 "
                              "(training steps; end = 0 turns the curriculum off)")
        if cfg.start > cfg.end:
            raise ConfigError(f"objective.curriculum.start={cfg.start} must be <= objective.curriculum.end={cfg.end} "
                              "(the curriculum runs over the first `end` steps; end = 0 turns it off)")
        self.cfg = cfg

    def temperature(self, step: int | None) -> float | None:
        """tau at training step `step` (0-based), or None where the plain discrete loss applies (after the
        curriculum, with it off, or outside training: step None)."""
        cfg = self.cfg
        if step is None or step >= cfg.end:
            return None
        progress = min(max((step - cfg.start) / max(cfg.end - cfg.start, 1), 0.0), 1.0)
        return 10.0 ** (cfg.tau_log10_start + (cfg.tau_log10_end - cfg.tau_log10_start) * progress)


def relaxed_draw(x0: Tensor, alpha: Tensor, tau: float, n: int, *,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """One Gaussian draw per position: x0 (B, L), alpha (B,) the schedule's alpha_t, n the vocabulary ->
    (z_t = argmax(w_t) (B, L) long, exactly q_t(. | x0); softmax(w_t / tau) (B, L, n) float32, the backbone input).
    float64 latent; it materializes the (B, L, n) Gaussians (Duo's top-k sampler, which avoids that at large n,
    is not implemented)."""
    mu = mu_of_alpha(alpha, n).view(-1, 1, 1)  # (B, 1, 1) float64
    latent = torch.randn(*x0.shape, n, generator=generator, dtype=torch.float64, device=x0.device)
    latent.scatter_add_(-1, x0.unsqueeze(-1), mu.expand(*x0.shape, 1))  # mu e_x + eps
    latent /= torch.sqrt(1 + mu**2)  # variance preserving: Duo's alpha~ e_x + sigma~ eps
    return latent.argmax(-1), torch.softmax(latent / tau, dim=-1).float()
