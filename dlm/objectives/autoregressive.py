"""Autoregressive baseline on the same backbone: causal attention, next-token cross-entropy, exact likelihood.

-log p(x) = sum_{l >= 1} -log p_theta(x^l | x^{<l}); position l of the output predicts token l + 1.
The first token (BOS in wrap mode) is the context and is not scored.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.config import ObjectiveConfig, RunConfig
from dlm.objectives.base import Denoiser, LogitsFn, reduce_per_token
from dlm.registry import OBJECTIVES, ConfigError
from dlm.types import LossOutput, Prediction
from dlm.utils.cross_entropy import gathered, nll_from_logits
from dlm.validation import check_token_ids


@OBJECTIVES.register("autoregressive")
class Autoregressive:
    """Not a diffusion objective: there is no process and no time. It declares what the library needs to know
    (objectives/base.py): causal attention, no process, the 'autoregressive' sampler, one BOS of context, and an
    exact likelihood."""

    causal = True
    process = None
    required_sampler = "autoregressive"
    context_tokens = 1
    exact_likelihood = True

    def __init__(self, vocab_size: int, cfg: ObjectiveConfig):
        if cfg.time_conditioning:
            raise ConfigError("objective 'autoregressive' has no time: set objective.time_conditioning=false")
        self.vocab_size, self.cfg = vocab_size, cfg
        self.time_conditioning = False
        self.input_width = self.output_width = vocab_size

    @classmethod
    def from_config(cls, cfg: RunConfig, vocab_size: int, mask_id: int | None = None) -> Autoregressive:
        """cfg.process is not used: there is no process (and no mask)."""
        return cls(vocab_size, cfg.objective)

    def condition(self, t: Tensor | None) -> None:
        return None

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
             generator: torch.Generator | None = None) -> LossOutput:
        """Next-token cross-entropy read from the logits: logsumexp(h) - h_{x^{l+1}} (no log-prob tensor). Every
        position is reduced and the last one dropped afterwards, so backward fills no zero-padded (B, L, N) slice."""
        targets = torch.nn.functional.pad(x0[:, 1:], (0, 1))  # the last position's target is a placeholder
        nll = nll_from_logits(logits_fn(x0, None), targets)[:, :-1]
        mask = torch.ones_like(x0[:, 1:], dtype=torch.bool) if attention_mask is None else attention_mask[:, 1:].bool()
        mask[:, : max(self.cfg.condition_prefix - 1, 0)] = False  # output l predicts token l + 1: prompt unscored
        return reduce_per_token(nll, mask)

    def check_tokens(self, x0: Tensor) -> None:
        check_token_ids(x0, self.vocab_size)
