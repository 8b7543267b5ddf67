"""Discrete classifier-free guidance: a Denoiser that wraps a Denoiser (docs/guidance.md).

One network serves both branches: a class-conditional model trained with condition dropout (the null label
num_classes, conditioning.py), or, for unsupervised CFG (SMDM arXiv 2410.18514, LLaDA arXiv 2502.09992), any masked
model, whose unconditional branch is the same input with the prompt replaced by masks. With scale w
(w = 0: the conditional model, bit for bit; LLaDA's cfg_scale; gamma = 1 + w in the guidance repo, arXiv 2412.10193):
    mean parameterization (MDLM SUBS, UDLM/Duo, RADD, AR), per position l:
        log x_w(. | x_t, c) = log_softmax( (1 + w) log x(. | x_t, c) - w log x(. | x_t, null) )
      the same as LLaDA's (1 + w) l_c - w l_u on raw logits, since log_softmax shifts each branch by a constant;
      SUBS constants (-1e6 on the mask, carried-over tokens) combine to themselves, so the result is still SUBS;
    SEDD log concrete score:  log s_w = (1 + w) log s(x_t, c) - w log s(x_t, null)   (0 stays 0 at x_t),
      which tilts the reverse rates R_w = R_c^(1+w) R_u^(-w) (the CTMC form of the guidance repo).
The guidance repo and Duo instead mix the two reverse *posteriors* q(x_s | x_t, .) for uniform noise; that needs the
step's s, which a Denoiser does not see, so here every process is guided through its x0 (or score) output.

What it guarantees. On one position, x_w is exactly the tilted law p_w(x | c) = p(x|c)^(1+w) p(x)^(-w) / Z, and
any masked or uniform sampler that is exact for an exact denoiser samples p_w exactly (the masked SEDD score tilt
too: the jump law out of the mask is proportional to the score). On L > 1 positions the guided denoiser is the
per-position tilt of the conditionals, x_w^l = p(x^l | x_t, c)^(1+w) p(x^l | x_t)^(-w) / Z_l(x_t). The sampler then
draws each unmasking from that, so the output law is a product of per-step tilted conditionals; it is not the
tilted joint p(x|c)^(1+w) p(x)^(-w) / Z, whose conditionals would need Z(x_t) summed over all completions, and it
depends on the sampler and its step count. It is guaranteed that w = 0 returns the conditional model exactly, that
every guided row is a normalized distribution, and that w > 0 moves each per-position conditional toward tokens
the condition makes likelier (the sampled text's label accuracy rises with w, at some cost in diversity;
examples/cfg_labels.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from dlm.denoiser import Denoiser, as_prediction
from dlm.guidance.conditioning import mask_prompt
from dlm.registry import ConfigError
from dlm.types import Prediction


def guide(conditional: Prediction, unconditional: Prediction, scale: float) -> Prediction:
    """Combine the two branches' outputs (B, L, N) with scale w (module docstring); float64 out."""
    if conditional.log_probs is not None and unconditional.log_probs is not None:
        mixed = (1 + scale) * conditional.log_probs.double() - scale * unconditional.log_probs.double()
        return Prediction(log_probs=torch.log_softmax(mixed, dim=-1))
    if conditional.log_score is not None and unconditional.log_score is not None:
        return Prediction(log_score=(1 + scale) * conditional.log_score.double()
                          - scale * unconditional.log_score.double())
    raise ConfigError("classifier-free guidance needs both branches to return the same kind of output "
                      "(log-probs or log-scores)")


class ClassifierFreeGuidance:
    """denoiser(xt, t, **kwargs) guided with scale w >= 0 (module docstring).

    conditional / unconditional: extra keywords of each branch's call (e.g. {"label": y} / {"label": null});
    unconditional_input: xt -> the unconditional branch's input (unsupervised CFG: the prompt masked), default xt.
    Any other keywords of a call (attention_mask) go to both branches. A cache policy serves one branch only, so
    guided calls (scale > 0) refuse `cache=`, as the dKV-Cache reference does; at scale 0 it reaches the model.
    """

    def __init__(self, denoiser: Denoiser, scale: float, *, conditional: dict[str, Any] | None = None,
                 unconditional: dict[str, Any] | None = None,
                 unconditional_input: Callable[[Tensor], Tensor] | None = None):
        if scale < 0:
            raise ConfigError(f"cfg scale must be >= 0 (0: the conditional model), got {scale}")
        self.denoiser, self.scale = denoiser, float(scale)
        self.conditional = dict(conditional or {})
        self.unconditional = dict(unconditional or {})
        self.unconditional_input = unconditional_input

    def __call__(self, xt: Tensor, t: Tensor | None, **kwargs: Any) -> Prediction:
        conditional_kwargs = {**kwargs, **_on(self.conditional, xt.device)}
        if self.scale == 0:  # the conditional model alone, cache included
            return as_prediction(self.denoiser(xt, t, **conditional_kwargs))
        if kwargs.get("cache") is not None:
            raise ConfigError("classifier-free guidance does not run with a KV cache; drop cache= or cfg_scale")
        conditional = as_prediction(self.denoiser(xt, t, **conditional_kwargs))
        x_uncond = xt if self.unconditional_input is None else self.unconditional_input(xt)
        unconditional = as_prediction(self.denoiser(x_uncond, t, **kwargs, **_on(self.unconditional, xt.device)))
        return guide(conditional, unconditional, self.scale)


def _on(kwargs: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensor keywords (labels) moved to the input's device."""
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in kwargs.items()}


def label_guidance(model: Any, label: Tensor, scale: float) -> ClassifierFreeGuidance:
    """CFG of a class-conditional DiffusionLM (model.num_classes > 0): label (B,) against the null class."""
    n = model.backbone.cfg.num_classes
    if n <= 0:
        raise ConfigError("label guidance needs a class-conditional model (model.num_classes > 0); "
                          "for a prompt, use prompt_guidance (unsupervised CFG)")
    label = torch.as_tensor(label, dtype=torch.long)
    return ClassifierFreeGuidance(model, scale, conditional={"label": label},
                                  unconditional={"label": torch.full_like(label, n)})


def prompt_guidance(denoiser: Denoiser, scale: float, prompt_mask: Tensor, mask_id: int) -> ClassifierFreeGuidance:
    """Unsupervised CFG (SMDM, LLaDA): the unconditional branch sees x_t with the prompt positions (prompt_mask,
    bool (B, L) or (1, L)) set to the mask id."""
    return ClassifierFreeGuidance(denoiser, scale, unconditional_input=lambda xt: mask_prompt(xt, prompt_mask, mask_id))
