"""DiffusionLM = shared backbone + objective: the object users train, evaluate, sample and save.

It is a Denoiser: model(xt, t) -> Prediction. The objective turns backbone logits into the parameterization
(SUBS log-probs, log-probs, SEDD log-score or next-token log-probs); the backbone never sees the process.
Optional keywords of a call: cache= (a dlm.cache policy: recompute only the positions it selects), attention_mask=
(bool (B, L), False at padding) and label= (class label of a class-conditional model, dlm/guidance/).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch
from torch import Tensor, nn

import dlm.objectives  # noqa: F401  (fills OBJECTIVES: every objective builds itself, from_config)
from dlm.config import RunConfig, with_family_defaults
from dlm.model.attention import with_padding
from dlm.model.transformer import Transformer
from dlm.process.base import Capability
from dlm.registry import OBJECTIVES, ConfigError
from dlm.types import LossOutput, Prediction
from dlm.validation import check_attention_mask, check_batch, check_times


def build_objective(cfg: RunConfig, vocab_size: int, mask_id: int | None = None):
    """RunConfig + vocabulary -> the configured objective (holding its process): the objective builds itself."""
    return OBJECTIVES.get_factory(cfg.objective.name).from_config(cfg, vocab_size, mask_id)


class DiffusionLM(nn.Module):
    """backbone: Transformer; objective: one of dlm.objectives; config: the RunConfig it was built from."""

    supports_kv_cache = True  # accepts cache= (dlm/cache/); samplers may then attach a cache by default

    def __init__(self, backbone: Transformer, objective: Any, *, config: RunConfig | None = None,
                 vocab_size: int | None = None, tokenizer: Any = None):
        super().__init__()
        self.backbone, self.objective = backbone, objective
        self.config = config
        self.vocab_size = vocab_size
        self.tokenizer = tokenizer

    @classmethod
    def from_config(cls, cfg: RunConfig, vocab_size: int, *, mask_id: int | None = None,
                    tokenizer: Any = None) -> DiffusionLM:
        cfg = with_family_defaults(cfg)  # what the config left unset, from its objective: saved as resolved
        objective = build_objective(cfg, vocab_size, mask_id)
        backbone = Transformer(cfg.model, objective.input_width, objective.output_width,
                               time_conditioning=objective.time_conditioning, causal=objective.causal)
        return cls(backbone, objective, config=cfg, vocab_size=vocab_size, tokenizer=tokenizer)

    @property
    def process(self):
        return self.objective.process

    @property
    def mask_id(self) -> int | None:
        """The process's mask id (one source of truth); None without a mask (uniform, autoregressive)."""
        has_mask = self.process is not None and Capability.MASK_STATE in self.process.capabilities
        return self.process.mask_id if has_mask else None

    def forward(self, xt: Tensor, t: Tensor | None = None, *, cache: Any = None, attention_mask: Tensor | None = None,
                label: Tensor | None = None, raw: bool | None = None, _logits: bool = False,
                **backbone_kwargs: Any) -> Prediction | Tensor:
        """xt (B, L) (or soft weights (B, L, N) over the vocabulary: model/transformer.py), t (B,) or per token (B, L)
        -> Prediction (log-probs over x0, or SEDD log-score, or next-token
        log-probs), (B, L, N).

        cache: a dlm.cache.CachePolicy; the backbone then runs on the positions it selects and the rest of the
        Prediction comes from its store. attention_mask: bool (B, L), False at padding keys (never attended).
        label: (B,) class ids of a class-conditional backbone (model.num_classes > 0; num_classes = no label).
        The raw backbone logits are `logits(...)`, which passes _logits=True through this module call (so FSDP2 and
        hooks see it); raw=True is its deprecated spelling.
        """
        if raw is not None:
            warnings.warn("DiffusionLM(..., raw=True) is deprecated: use DiffusionLM.logits(...)", DeprecationWarning,
                          stacklevel=2)
            _logits = raw
        check_times(t, xt.shape[0], xt.shape[1])
        if t is not None and t.dim() == 0:
            t = t.expand(xt.shape[0])
        if label is not None:
            backbone_kwargs["label"] = label
        if cache is not None:
            if self.objective.cfg.logit_shift:
                raise ConfigError("a block model with objective.logit_shift decodes without a cache policy (token j "
                                  "reads the output at j - 1, which a partial recompute does not have): drop cache=")
            return cache.predict(self, xt, t, attention_mask=attention_mask, **backbone_kwargs)
        return self.forward_positions(xt, t, attention_mask=attention_mask, _logits=_logits, **backbone_kwargs)

    def logits(self, xt: Tensor, t: Tensor | None = None, *, attention_mask: Tensor | None = None,
               label: Tensor | None = None, **backbone_kwargs: Any) -> Tensor:
        """The backbone logits (B, L, N) before the objective's parameterization: what training losses read."""
        return self(xt, t, attention_mask=attention_mask, label=label, _logits=True, **backbone_kwargs)

    def _forward(self, *args: Any, **kwargs: Any) -> Prediction | Tensor:
        warnings.warn("DiffusionLM._forward is deprecated: use DiffusionLM.forward_positions", DeprecationWarning,
                      stacklevel=2)
        return self.forward_positions(*args, **kwargs)

    def forward_positions(self, tokens: Tensor, t: Tensor | None, *, positions: Tensor | None = None,
                          length: int | None = None, kv: Any = None, attention_mask: Tensor | None = None,
                          attention_pattern: Tensor | None = None, _logits: bool = False,
                          **backbone_kwargs: Any) -> Prediction | Tensor:
        """The one forward pass, shared by the plain call and the cache policies (dlm/cache/base.py: the
        CacheableDenoiser protocol).

        tokens (B, n) long: the tokens at `positions` (B, n) of a length-`length` sequence (default: all of it,
        positions 0..n-1 and length n); t (B,) or None. kv: the backbone's KV hook (a cache policy), whose keys and
        values of all `length` positions the n queries attend to. attention_mask: bool (B, length), False at
        padding keys. Which keys a query sees is the objective's attention pattern at the query positions
        (Objective.attention_mask), or `attention_pattern`, an explicit bool (n, length) mask (True = may attend)
        for this call (block diffusion's two-stream training input, whose tokens share positions).
        -> Prediction over the n positions, (B, n, N), or with _logits=True the logits (B, n, N).
        """
        length = tokens.shape[1] if length is None else length
        if attention_pattern is not None:
            mask = with_padding(attention_pattern, attention_mask)
        else:
            mask = self.objective.attention_mask(attention_mask, positions, length, device=tokens.device)
        if mask is not None:
            backbone_kwargs["attn_mask"] = mask
        if positions is not None:
            backbone_kwargs["positions"] = positions
        if kv is not None:
            backbone_kwargs["kv_cache"] = kv
        logits = self.backbone(tokens, self.objective.condition_at(t, tokens, positions, length), **backbone_kwargs)
        return logits if _logits else self.objective.predict(logits, tokens, t)

    def loss(self, x0: Tensor, *, attention_mask: Tensor | None = None, generator: torch.Generator | None = None,
             label: Tensor | None = None, condition_mask: Tensor | None = None, step: int | None = None) -> LossOutput:
        """One Monte Carlo estimate of the training loss (per-token mean of the bound) on a batch x0 (B, L).
        label: (B,) class ids for conditional training (apply condition dropout first: dlm.guidance.drop_labels).
        condition_mask: bool (B, L), True at each row's prompt: never corrupted, never scored (SFT).
        step: the global optimizer step (0-based) when training, which a step-dependent loss reads
        (objective.curriculum); None (validation, evaluation) is always the plain bound."""
        check_batch(x0)
        self.objective.check_tokens(x0)
        check_attention_mask(attention_mask, x0)
        if condition_mask is not None:
            check_attention_mask(condition_mask, x0)
        logits_fn = functools.partial(self.logits, label=label)
        kwargs = {} if condition_mask is None else {"condition_mask": condition_mask}
        return self.objective.loss(logits_fn, x0, attention_mask, generator=generator, step=step, **kwargs)

    @torch.no_grad()
    def elbo(self, x0: Tensor, *, n_t: int = 128, generator: torch.Generator | None = None,
             attention_mask: Tensor | None = None) -> Tensor:
        """(B,) upper bound on -log p(x0) in nats (exact NLL for the autoregressive baseline): the objective's."""
        check_batch(x0)
        check_attention_mask(attention_mask, x0)
        return self.objective.elbo(self, x0, n_t=n_t, generator=generator, attention_mask=attention_mask)

    def generate(self, sampler: Any = "ancestral", *, steps: int = 128, **kwargs: Any) -> Tensor:
        """Convenience for dlm.sample.generate(self, self.process, sampler, steps=..., ...). A sampler given by name
        ("confidence:threshold=0.9") is built by the objective, as the command line builds it: a block-diffusion
        model runs it inside its blocks over the exact cache, the AR baseline always decodes left to right."""
        from dlm.sample import generate

        if isinstance(sampler, str):
            sampler = self.objective.sampler(sampler)
        return generate(self, self.process, sampler, steps=steps, **kwargs)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, path: str, **kwargs: Any) -> None:
        """Write a self-describing Hugging Face checkpoint (safetensors + config + tokenizer)."""
        from dlm.pretrained import save_pretrained

        save_pretrained(self, path, **kwargs)

    @classmethod
    def from_pretrained(cls, path: str, **kwargs: Any) -> DiffusionLM:
        from dlm.pretrained import load_pretrained

        return load_pretrained(cls, path, **kwargs)

    def check_config(self) -> None:
        if self.config is None:
            raise ConfigError("this DiffusionLM was built without a RunConfig; build it with DiffusionLM.from_config")
