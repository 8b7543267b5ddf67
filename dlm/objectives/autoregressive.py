"""Autoregressive baseline on the same backbone: causal attention, next-token cross-entropy, exact likelihood.

-log p(x) = sum_{l >= 1} -log p_theta(x^l | x^{<l}); position l of the output predicts token l + 1.
The first token (BOS in wrap mode) is the context and is not scored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from dlm.config import ObjectiveConfig, RunConfig
from dlm.objectives.base import (
    AttentionPattern,
    Denoiser,
    LogitsFn,
    Objective,
    condition_positions,
    reduce_per_token,
)
from dlm.registry import OBJECTIVES, ConfigError
from dlm.types import LossOutput, Prediction
from dlm.utils.cross_entropy import gathered, nll_from_logits
from dlm.validation import check_token_ids

if TYPE_CHECKING:
    from dlm.sample.base import Sampler


@OBJECTIVES.register("autoregressive")
class AutoregressiveObjective(Objective):
    """Not a diffusion objective: there is no process and no time. Its family policy (objectives/base.py): causal
    attention, no process, always the left-to-right 'autoregressive' sampler, one BOS of context, an exact
    likelihood, and no infilling (a span cannot be decoded from the text on both sides)."""

    attention = AttentionPattern.CAUSAL
    default_process = None
    default_sampler = "autoregressive"
    context_tokens = 1
    exact_likelihood = True
    likelihood_estimator = "exact"
    infills = False

    def __init__(self, vocab_size: int, cfg: ObjectiveConfig):
        self.process = None
        if cfg.time_conditioning:
            raise ConfigError("objective 'autoregressive' has no time: set objective.time_conditioning=false")
        self.vocab_size, self.cfg = vocab_size, cfg
        self.time_conditioning = False

    @classmethod
    def from_config(cls, cfg: RunConfig, vocab_size: int, mask_id: int | None = None) -> AutoregressiveObjective:
        """cfg.process is not used: there is no process (and no mask)."""
        return cls(vocab_size, cfg.objective)

    @property
    def input_width(self) -> int:
        return self.vocab_size

    @property
    def output_width(self) -> int:
        return self.vocab_size

    def sampler(self, name: str | None = None, **options) -> Sampler:
        """Always the left-to-right sampler, whatever `name` says; semi-AR blocks (block_size) do not apply."""
        options.pop("block_size", None)
        return super().sampler("autoregressive", **options)

    def condition(self, t: Tensor | None) -> None:
        return None

    def integrand(self, logits: Tensor, x0: Tensor, xt: Tensor, t: Tensor | None) -> Tensor:
        """(B, L) next-token -log p(x^{l+1} | x^{<=l}) read from the logits; the last position (no target) is 0."""
        targets = torch.nn.functional.pad(x0[:, 1:], (0, 1))  # the last position's target is a placeholder
        nll = nll_from_logits(logits, targets)
        return torch.cat([nll[:, :-1], torch.zeros_like(nll[:, -1:])], dim=-1)

    def conditional_elbo(self, denoiser: Denoiser, x0: Tensor, target_mask: Tensor, *, n_t: int = 128,
                         generator: torch.Generator | None = None, **_: object) -> Tensor:
        """(B,) sum over the target positions l of -log p(x^l | x^{<l}), nats: the exact -log p(x0[target] |
        x0[~target]) when the context comes before the target (a continuation; context tokens inside it, e.g.
        unknown words, are read as given). n_t and generator are unused (nothing is random)."""
        target = torch.as_tensor(target_mask, dtype=torch.bool, device=x0.device).expand_as(x0)
        return self.elbo(denoiser, x0, attention_mask=target)

    def predict(self, logits: Tensor, xt: Tensor, t: Tensor | None) -> Prediction:
        return Prediction(log_probs=torch.log_softmax(logits.float(), dim=-1))

    def token_nll(self, denoiser: Denoiser, x0: Tensor) -> Tensor:
        """(B, L) -> (B, L-1) exact -log p(x^l | x^{<l}) for l = 1..L-1, from a denoiser's next-token log-probs."""
        return -gathered(denoiser(x0, None).log_probs[:, :-1], x0[:, 1:])

    def elbo(self, denoiser: Denoiser, x0: Tensor, *, n_t: int = 128, generator: torch.Generator | None = None,
             attention_mask: Tensor | None = None) -> Tensor:
        """(B,) exact -log p(x^1..x^{L-1} | x^0) in nats (n_t and generator are unused: nothing is random);
        attention_mask (B, L) selects the scored tokens (its first column is the context)."""
        self.check_tokens(x0)
        nll = self.token_nll(denoiser, x0)
        if attention_mask is not None:
            nll = nll * attention_mask[:, 1:]
        return nll.double().sum(-1)

    def loss(self, logits_fn: LogitsFn, x0: Tensor, attention_mask: Tensor | None = None, *,
             generator: torch.Generator | None = None, condition_mask: Tensor | None = None,
             step: int | None = None) -> LossOutput:
        """Next-token cross-entropy read from the logits: logsumexp(h) - h_{x^{l+1}} (no log-prob tensor). Every
        position is reduced and the last one dropped afterwards, so backward fills no zero-padded (B, L, N) slice."""
        nll = self.integrand(logits_fn(x0, None), x0, x0, None)[:, :-1]
        mask = torch.ones_like(x0[:, 1:], dtype=torch.bool) if attention_mask is None else attention_mask[:, 1:].bool()
        condition = condition_positions(x0, self.cfg.condition_prefix, condition_mask)
        if condition is not None:  # output l predicts token l + 1: prompt tokens unscored
            mask &= ~condition[:, 1:]
        return reduce_per_token(nll, mask, per_row=self.cfg.loss_per_row)

    def token_log_probs(self, logits_fn: LogitsFn, ids: Tensor, completion: Tensor, *, prompt_mask_prob: float = 0.0,
                        generator: torch.Generator | None = None) -> Tensor:
        """The exact log p(ids_k | ids_{<k}) at each completion position k (plain GRPO, arXiv 2402.03300);
        prompt_mask_prob and generator are unused (nothing is random). -> (B, L) float32, 0 outside the completion."""
        nll = self.integrand(logits_fn(ids, None), ids, ids, None)  # position l scores token l + 1
        shifted = torch.nn.functional.pad(-nll[:, :-1].float(), (1, 0))  # position k: log p(token k | < k)
        return torch.where(completion.bool(), shifted, torch.zeros_like(shifted))

    def check_tokens(self, x0: Tensor) -> None:
        check_token_ids(x0, self.vocab_size)
