"""Objective = parameterization of the backbone output + the training loss it defines.

An objective owns the process; the backbone never sees the mask id, sigma scaling or the process. It also says what
the rest of the library needs to know about it, so nothing else tests for a family (the autoregressive baseline,
objectives/autoregressive.py, declares the same attributes):
  causal            the backbone's attention mask (False: bidirectional);
  process           the noise process (None: no diffusion, no time);
  required_sampler  the sampler it always decodes with (None: the caller's choice among the diffusion samplers);
  context_tokens    leading positions that are context, a BOS the prompt supplies: never scored, never sampled;
  exact_likelihood  whether `elbo` is the exact -log p(x0) (no Monte Carlo, no bound);
  from_config       RunConfig + vocabulary -> the objective with its process (the build step);
  elbo              (B,) bound on -log p(x0), nats.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from dlm.config import ObjectiveConfig, RunConfig
from dlm.denoiser import Denoiser
from dlm.eval.likelihood import elbo as process_elbo
from dlm.objectives.time_sampling import get_time_sampler
from dlm.process.base import Process
from dlm.process.schedules import build_schedule
from dlm.registry import PROCESSES, ConfigError
from dlm.types import LossOutput, Prediction

NEG_INF = -1e6  # finite "minus infinity": avoids inf - inf = NaN (docs/masked.md#subs-parameterization)

LogitsFn = Callable[[Tensor, "Tensor | None"], Tensor]
"""(xt (B, L), t (B,) or None) -> raw backbone logits (B, L, N): what a training loss reads (DiffusionLM(raw=True))."""


class Objective(ABC):
    """Subclasses set `causal`, and define `predict` (logits -> Prediction) and `integrand` (the bound at t)."""

    causal: bool = False
    required_sampler: ClassVar[str | None] = None
    context_tokens: ClassVar[int] = 0
    exact_likelihood: ClassVar[bool] = False
    process_type: ClassVar[type[Process]] = Process  # the processes this parameterization is defined for

    def __init__(self, process: Process, cfg: ObjectiveConfig):
        if not isinstance(process, self.process_type):
            raise ConfigError(f"objective '{cfg.name}' needs process '{self.process_type.__name__.lower()}', "
                              f"got {type(process).__name__}")
        self.process, self.cfg = process, cfg
        self.time_conditioning = cfg.time_conditioning
        self.time_sampler = get_time_sampler(cfg.time_sampler)

    @classmethod
    def from_config(cls, cfg: RunConfig, vocab_size: int, mask_id: int | None = None) -> Objective:
        """The configured process (cfg.process: name + schedule) over vocab_size tokens, and this objective on it."""
        sched = cfg.process.schedule
        schedule = build_schedule(sched.name, eps=sched.eps, sigma_min=sched.sigma_min, sigma_max=sched.sigma_max)
        process = PROCESSES.get_factory(cfg.process.name).build(vocab_size, schedule, mask_id=mask_id)
        return cls(process, cfg.objective)

    @property
    def input_width(self) -> int:
        return self.process.width

    @property
    def output_width(self) -> int:
        return self.process.width

    def condition(self, t: Tensor | None) -> Tensor | None:
        """What the backbone is conditioned on: sigma(t) = -log alpha_t (SEDD/MDLM), or nothing."""
        if not self.time_conditioning:
            return None
        return self.process.schedule.sigma(t.float())

    @abstractmethod
    def predict(self, logits: Tensor, xt: Tensor, t: Tensor | None) -> Prediction:
        """Backbone logits (B, L, N) -> the parameterized Prediction."""

    @abstractmethod
    def integrand(self, logits: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """(B, L) per-token integrand of the continuous-time bound at t (nats), read from the raw backbone logits
        (B, L, N) in their own dtype, with no float64 or (B, L, N) copies beyond what autograd needs; its t-average
        bounds -log p. It equals the process's bound (eval/likelihood.py) on predict(logits)."""

    def check_tokens(self, x0: Tensor) -> None:
        """One-line ConfigError for ids outside the data vocabulary (the process knows it)."""
        self.process.check_tokens(x0)

    def sample_times(self, n: int, *, generator: torch.Generator | None, device: torch.device) -> Tensor:
        return self.time_sampler.t(n, self.cfg.sampling_eps, generator=generator, device=device)

    def elbo(self, denoiser: Denoiser, x0: Tensor, *, n_t: int = 128, generator: torch.Generator | None = None,
             attention_mask: Tensor | None = None) -> Tensor:
        """(B,) Monte Carlo upper bound on -log p(x0) in nats: the process's continuous-time bound of this
        parameterization, n_t stratified times per sequence (dlm/eval/likelihood.py)."""
        return process_elbo(denoiser, self.process, x0, n_t=n_t, generator=generator, attention_mask=attention_mask)

    def loss(self, logits_fn: LogitsFn, x0: Tensor, attention_mask: Tensor | None = None, *,
             generator: torch.Generator | None = None) -> LossOutput:
        """One Monte Carlo draw of t and x_t per sequence; per-token mean over non-pad tokens (MDLM reduction).
        logits_fn: (xt, t) -> backbone logits (DiffusionLM(..., raw=True)). Token ids are checked by the caller."""
        t = self.sample_times(x0.shape[0], generator=generator, device=x0.device)
        xt = self.process.corrupt(x0, t, generator=generator)
        scored = attention_mask
        if self.cfg.condition_prefix > 0:
            xt, scored = clamp_prefix(x0, xt, attention_mask, self.cfg.condition_prefix)
        per_token = self.integrand(logits_fn(xt, t), x0, xt, t)
        return reduce_per_token(per_token, scored)


def clamp_prefix(x0: Tensor, xt: Tensor, attention_mask: Tensor | None, prefix: int) -> tuple[Tensor, Tensor]:
    """Conditional training on a fixed-length prompt (MGDM's src_mask, arXiv 2410.14157): positions [0, prefix) keep
    x0 and leave the loss, which then bounds -log p(x^{>=prefix} | x^{<prefix}). -> (xt (B, L), scored bool (B, L))."""
    condition = torch.zeros_like(x0, dtype=torch.bool)
    condition[:, :prefix] = True
    scored = ~condition if attention_mask is None else attention_mask.bool() & ~condition
    return torch.where(condition, x0, xt), scored


def reduce_per_token(per_token: Tensor, attention_mask: Tensor | None) -> LossOutput:
    """(B, L) per-token losses -> LossOutput with the mean over attended tokens."""
    weights = torch.ones_like(per_token) if attention_mask is None else attention_mask.to(per_token.dtype)
    total = (per_token * weights).sum()
    count = weights.sum().clamp_min(1)
    return LossOutput(loss=total / count, nll_sum=total.detach().double(), num_tokens=count.detach())
