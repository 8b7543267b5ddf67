"""Objective = parameterization of the backbone output + the training loss it defines.

An objective owns the process and its family's policy; the backbone never sees the mask id, sigma scaling or the
process. It says, as data, what the rest of the library needs to know, so nothing else tests for a family (the
autoregressive baseline, objectives/autoregressive.py, is an Objective like the others):
  attention                  the backbone's AttentionPattern (bidirectional, causal; block-causal next);
  default_process            the process a config gets when it names none (None: no diffusion, no time);
  default_time_conditioning  / default_time_sampler: the same for objective.time_conditioning / time_sampler;
  needs                      the process capabilities the parameterization is defined for (process/base.py);
  sampler(name, **options)   the Sampler to decode with: the caller's choice or `default_sampler`, checked;
  context_tokens             leading positions that are context, a BOS the prompt supplies: never scored or sampled;
  supports_curriculum        whether it trains with objective.curriculum (Duo's relaxed inputs: uniform_elbo);
  exact_likelihood           whether `elbo` is the exact -log p(x0) (no Monte Carlo, no bound);
  conditional_elbo           (B,) bound on -log p(x0[target] | x0[~target]), nats;
  from_config                RunConfig + vocabulary -> the objective with its process (the build step);
  elbo                       (B,) bound on -log p(x0), nats.
So `objective.name=uniform_elbo` alone is a valid config: with_family_defaults fills what the config left unset.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from dlm.config import ObjectiveConfig, RunConfig, with_family_defaults
from dlm.denoiser import Denoiser
from dlm.eval.likelihood import conditional_elbo_samples
from dlm.eval.likelihood import elbo as process_elbo
from dlm.model.attention import attention_mask
from dlm.objectives.time_sampling import get_time_sampler
from dlm.process.base import Capability, Process
from dlm.process.schedules import build_schedule
from dlm.registry import PROCESSES, ConfigError
from dlm.types import LossOutput, Prediction

if TYPE_CHECKING:
    from dlm.sample.base import Sampler

NEG_INF = -1e6  # finite "minus infinity": avoids inf - inf = NaN (docs/masked.md#subs-parameterization)

LogitsFn = Callable[[Tensor, "Tensor | None"], Tensor]
"""(xt (B, L), t (B,) or None) -> raw backbone logits (B, L, N): what a training loss reads (DiffusionLM.logits)."""


class AttentionPattern(Enum):
    """Which keys a query position attends to in the backbone: data, so that a block-causal family can add itself."""

    BIDIRECTIONAL = "bidirectional"
    CAUSAL = "causal"
    BLOCK_CAUSAL = "block_causal"  # a query sees the keys of its own block and of earlier ones (attention_block)


class Objective(ABC):
    """Subclasses define `predict` (logits -> Prediction) and `integrand` (the bound at t), and override the family
    policy below where theirs differs."""

    attention: ClassVar[AttentionPattern] = AttentionPattern.BIDIRECTIONAL
    attention_block: int = 0  # BLOCK_CAUSAL: the block size of the pattern
    default_process: ClassVar[str | None] = "absorbing"
    default_time_conditioning: ClassVar[bool] = False
    default_time_sampler: ClassVar[str] = "stratified"
    default_sampler: ClassVar[str] = "ancestral"
    needs: ClassVar[frozenset[Capability]] = frozenset()
    context_tokens: ClassVar[int] = 0
    supports_curriculum: ClassVar[bool] = False
    exact_likelihood: ClassVar[bool] = False
    infills: ClassVar[bool] = True  # can decode a span from the text on both sides
    likelihood_estimator: ClassVar[str | None] = None  # the ESTIMATORS entry its likelihood always uses; None: any
    shifts_logits: ClassVar[bool] = False  # accepts objective.logit_shift (token j read from output j - 1)

    def __init__(self, process: Process, cfg: ObjectiveConfig):
        missing = self.needs - process.capabilities
        if missing:
            raise ConfigError(f"objective '{cfg.name}' needs a process with {sorted(c.value for c in missing)}, got "
                              f"{type(process).__name__}; leave process.name unset for its default "
                              f"'{self.default_process}'")
        if cfg.logit_shift and not self.shifts_logits:
            raise ConfigError(f"objective.logit_shift applies to block_diffusion (an AR-converted block model), not "
                              f"'{cfg.name}'")
        if cfg.curriculum.end > 0 and not self.supports_curriculum:
            raise ConfigError(f"objective.curriculum (Duo's Gaussian relaxation) trains uniform_elbo models only, not "
                              f"'{cfg.name}'; drop the objective.curriculum settings")
        self.process, self.cfg = process, cfg
        self.time_conditioning = bool(cfg.time_conditioning)
        self.time_sampler = get_time_sampler(cfg.time_sampler or self.default_time_sampler)

    @property
    def causal(self) -> bool:
        """Whether the backbone attends causally (the attention pattern, not "is autoregressive")."""
        return self.attention is AttentionPattern.CAUSAL

    def attention_mask(self, padding: Tensor | None, query_positions: Tensor | None, n_keys: int, *,
                       device: torch.device | None = None) -> Tensor | None:
        """The backbone's mask for queries at query_positions (B, n) (None: all n_keys positions) over keys
        0..n_keys-1, False at padding keys (padding (B, n_keys)): this objective's pattern as data
        (model/attention.py: attention_mask). None when nothing is masked."""
        block = self.attention_block if self.attention is AttentionPattern.BLOCK_CAUSAL else 0
        return attention_mask(padding, query_positions, n_keys, causal=self.causal, block_size=block, device=device)

    def sampler(self, name: str | None = None, **options) -> Sampler:
        """The Sampler this model decodes with: `name` (a registered sampler) or the family's default, built with
        `options` and checked against the process (a one-line ConfigError names the samplers that can run)."""
        from dlm.sample.base import get_sampler  # sample/ imports the process layer; objectives load first

        sampler = get_sampler(name or self.default_sampler, **options)
        sampler.check(self.process)
        return sampler

    def conditional_elbo(self, denoiser: Denoiser, x0: Tensor, target_mask: Tensor, *, n_t: int = 128,
                         generator: torch.Generator | None = None, batch_size: int | None = None) -> Tensor:
        """(B,) Monte Carlo bound on -log p(x0[target] | x0[~target]) in nats, the mean of n_t stratified draws
        (eval/likelihood.py: conditional_elbo_samples); denoiser: this model, or a wrapper of it (guidance)."""
        return conditional_elbo_samples(denoiser, self.process, x0, target_mask, n_t=n_t, generator=generator,
                                        batch_size=batch_size).mean(0)

    @property
    def enumerates_mask_patterns(self) -> bool:
        """Whether the conditional bound can be summed exactly over every mask pattern of a few target tokens
        (eval/likelihood.py: masked_conditional_nll): a masked, mean-parameterized model that ignores t."""
        return False

    @classmethod
    def from_config(cls, cfg: RunConfig, vocab_size: int, mask_id: int | None = None) -> Objective:
        """The configured process (cfg.process: name + schedule) over vocab_size tokens, and this objective on it."""
        cfg = with_family_defaults(cfg)
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

    def condition_at(self, t: Tensor | None, tokens: Tensor, positions: Tensor | None, length: int) -> Tensor | None:
        """What the backbone is conditioned on in one forward over `tokens` (B, n) at `positions` (B, n) (None:
        0..n-1) of a length-`length` sequence: condition(t) here; block diffusion gives its clean prefix t = 0."""
        return self.condition(t)

    @abstractmethod
    def predict(self, logits: Tensor, xt: Tensor, t: Tensor | None) -> Prediction:
        """Backbone logits (B, L, N) -> the parameterized Prediction."""

    @abstractmethod
    def integrand(self, logits: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """(B, L) per-token integrand of the continuous-time bound at t (nats), read from the raw backbone logits
        (B, L, N) in their own dtype, with no float64 or (B, L, N) copies beyond what autograd needs; its t-average
        bounds -log p. It equals the process's bound (eval/likelihood.py) on predict(logits)."""

    def token_log_probs(self, logits_fn: LogitsFn, ids: Tensor, completion: Tensor, *, prompt_mask_prob: float = 0.0,
                        generator: torch.Generator | None = None) -> Tensor:
        """(B, L) float32 per-token log pi(ids_k) at the completion positions (bool (B, L)), 0 elsewhere: what
        policy-gradient post-training reads (docs/posttraining.md#per-token-log-probabilities). A family whose
        likelihood has no per-token form (a concrete score) cannot be post-trained this way."""
        raise ConfigError(f"objective '{self.cfg.name}' gives no per-token log-probability for RL; post-train a "
                          "masked_elbo, block_diffusion or autoregressive model")

    # --- training state beyond the weights (checkpointed with the trainer, restored on resume) -------------
    def state_dict(self) -> dict:
        """What training changed in the objective itself (block diffusion: its searched clip window), keyed by
        objective config fields: checkpointed with the trainer, and written into an exported model's config.json
        (save_pretrained) so that from_pretrained rebuilds the objective with it."""
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: B027  (optional hook: nothing to restore by default)
        """Restore state_dict()'s output."""

    def validation_search(self) -> Any:
        """An object with add(logits_fn, x0, generator) per validation batch and finish() -> log line, run by the
        training loop's validation, or None (default): block diffusion's clipped-window search."""
        return None

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
             generator: torch.Generator | None = None, condition_mask: Tensor | None = None,
             step: int | None = None) -> LossOutput:
        """One Monte Carlo draw of t and x_t per sequence; per-token mean over non-pad tokens (MDLM reduction).
        logits_fn: (xt, t) -> backbone logits (DiffusionLM.logits). Token ids are checked by the caller.
        condition_mask: bool (B, L), True at each row's prompt (SFT, docs/posttraining.md#sft): kept clean, unscored;
        objective.condition_prefix adds the positions [0, prefix) of every row.
        step: the global optimizer step of a training call (0-based), None outside training (validation,
        evaluation); only a loss that changes over training reads it (objective.curriculum: training_draw)."""
        t = self.sample_times(x0.shape[0], generator=generator, device=x0.device)
        xt, relaxed = self.training_draw(x0, t, step, generator=generator)
        scored = attention_mask
        condition = condition_positions(x0, self.cfg.condition_prefix, condition_mask)
        if condition is not None:
            xt, scored = clamp_condition(x0, xt, attention_mask, condition)
        inputs = xt if relaxed is None else with_clean_condition(relaxed, xt, condition)
        per_token = self.integrand(logits_fn(inputs, t), x0, xt, t)
        return reduce_per_token(per_token, scored, per_row=self.cfg.loss_per_row)

    def training_draw(self, x0: Tensor, t: Tensor, step: int | None, *,
                      generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        """(x_t ~ q_t(. | x0) (B, L), what the backbone reads instead of x_t or None): the process's draw, read as
        tokens. uniform_elbo's curriculum returns Duo's relaxation (B, L, N) at the steps it covers."""
        return self.process.corrupt(x0, t, generator=generator), None


def condition_positions(x0: Tensor, prefix: int, condition_mask: Tensor | None) -> Tensor | None:
    """bool (B, L): each row's prompt positions, [0, prefix) or'ed with condition_mask; None when there are none."""
    if prefix <= 0 and condition_mask is None:
        return None
    condition = torch.zeros_like(x0, dtype=torch.bool)
    condition[:, :prefix] = True
    return condition if condition_mask is None else condition | condition_mask.bool()


def clamp_condition(x0: Tensor, xt: Tensor, attention_mask: Tensor | None, condition: Tensor) -> tuple[Tensor, Tensor]:
    """Conditional training on a prompt (MGDM's src_mask, arXiv 2410.14157; LLaDA's SFT, arXiv 2502.09992 §2.3):
    positions where `condition` (B, L) holds keep x0 and leave the loss, which then bounds
    -log p(x^{response} | x^{prompt}). -> (xt (B, L), scored bool (B, L))."""
    scored = ~condition if attention_mask is None else attention_mask.bool() & ~condition
    return torch.where(condition, x0, xt), scored


def with_clean_condition(relaxed: Tensor, xt: Tensor, condition: Tensor | None) -> Tensor:
    """A soft backbone input (B, L, N) with the condition (prompt) positions one-hot at their clean token xt."""
    if condition is None:
        return relaxed
    clean = torch.nn.functional.one_hot(xt, relaxed.shape[-1]).to(relaxed.dtype)
    return torch.where(condition.unsqueeze(-1), clean, relaxed)


def reduce_per_token(per_token: Tensor, attention_mask: Tensor | None, *, per_row: bool = False) -> LossOutput:
    """(B, L) per-token losses -> LossOutput with the mean over attended tokens (MDLM's reduction), or with
    per_row the mean over rows of each row's own per-token mean, LLaDA's SFT normalisation (arXiv 2502.09992
    §2.3; docs/posttraining.md#sft): (1/B) sum_b sum_l m_bl loss_bl / sum_l m_bl, a row with no scored token
    counting 0. The two agree when every row scores as many tokens. nll_sum / num_tokens stay the totals."""
    scored = torch.ones_like(per_token, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    # selected, not multiplied: a non-finite value at padding (inf * 0 = NaN) stays out of the loss
    row_totals = torch.where(scored, per_token, torch.zeros_like(per_token)).sum(-1)  # (B,)
    row_counts = scored.sum(-1).to(per_token.dtype)  # (B,)
    total, count = row_totals.sum(), row_counts.sum().clamp_min(1)
    loss = (row_totals / row_counts.clamp_min(1)).mean() if per_row else total / count
    return LossOutput(loss=loss, nll_sum=total.detach().double(), num_tokens=count.detach())
