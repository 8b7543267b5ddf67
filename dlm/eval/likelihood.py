"""ELBO / perplexity bound of any denoiser under a process, with Monte Carlo samples of t.

    -log p(x0) <= E_{t ~ U(0,1)} E_{x_t ~ q_t(.|x0)} [ sum_l integrand_l(t) ]   (+ a prior term for uniform)
The integrand is chosen by what the denoiser returns and the process it runs under:
  log_probs + Absorbing -> masked ELBO (MDLM §1.4);  log_probs + Uniform -> UDLM/Duo ELBO (§3.1);
  log_score (SEDD)       -> sigma'(t) * score entropy (§2.4, the DSE bound).
t is drawn stratified over (0, 1] (n_t strata per sequence, each with its own jitter: a low-discrepancy RADD-style
estimate). For absorbing processes with alpha_1 > 0 (LogLinear eps) the bound misses a term of order eps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dlm.objectives.masked_elbo import masked_integrand
from dlm.objectives.score_entropy import score_entropy_integrand
from dlm.objectives.uniform_elbo import uniform_integrand, uniform_prior_kl
from dlm.process.absorbing import Absorbing
from dlm.process.base import Process
from dlm.types import Prediction

Denoiser = Callable[[Tensor, Tensor], "Prediction | Tensor"]


def as_prediction(output: Prediction | Tensor) -> Prediction:
    """A bare tensor from a user denoiser means log-probabilities over x0."""
    return output if isinstance(output, Prediction) else Prediction(log_probs=output)


def integrand(process: Process, prediction: Prediction, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
    """(B, L) per-token integrand of the bound at t for this denoiser output and process."""
    if prediction.log_score is not None:
        return score_entropy_integrand(process, prediction.log_score, x0, xt, t)
    if isinstance(process, Absorbing):
        return masked_integrand(prediction.log_probs.float(), x0, xt, process.mask_id,
                                process.schedule.masked_weight(t.float()))
    return uniform_integrand(prediction.log_probs, x0, xt, process.schedule, t).float()


def prior_term_per_token(process: Process) -> float:
    """KL(q(x_1|x0) || pi) per position: exact for uniform; 0 by convention for absorbing."""
    if isinstance(process, Absorbing):
        return 0.0
    alpha_1 = float(process.schedule.alpha(torch.tensor(1.0, dtype=torch.float64)))
    return uniform_prior_kl(alpha_1, process.width)


@torch.no_grad()
def elbo_samples(denoiser: Denoiser, process: Process, x0: Tensor, *, n_t: int = 128,
                 generator: torch.Generator | None = None, attention_mask: Tensor | None = None,
                 batch_size: int | None = None) -> Tensor:
    """(n_t, B) per-sequence bounds, nats: one stratified t per row; their mean over n_t is `elbo`."""
    process.check_tokens(x0)
    B, L = x0.shape
    strata = torch.arange(n_t, device=x0.device, dtype=torch.float64)
    jitter = torch.rand(B, n_t, generator=generator, device=x0.device, dtype=torch.float64)
    times = ((strata + jitter) / n_t).T.reshape(-1).clamp_min(1e-6)  # (n_t * B,), t-major
    weights = torch.ones_like(x0, dtype=torch.float32) if attention_mask is None else attention_mask.float()
    chunk = batch_size or max(B, 8192 // L)
    out = []
    x0_rep = x0.repeat(n_t, 1)
    w_rep = weights.repeat(n_t, 1)
    for start in range(0, n_t * B, chunk):
        x, t = x0_rep[start:start + chunk], times[start:start + chunk]
        xt = process.corrupt(x, t, generator=generator)
        per_token = integrand(process, as_prediction(denoiser(xt, t.float())), x, xt, t)
        out.append((per_token * w_rep[start:start + chunk]).double().sum(-1))
    return torch.cat(out).view(n_t, B) + prior_term_per_token(process) * weights.double().sum(-1)


def elbo(denoiser: Denoiser, process: Process, x0: Tensor, *, n_t: int = 128,
         generator: torch.Generator | None = None, attention_mask: Tensor | None = None) -> Tensor:
    """(B,) Monte Carlo bound on -log p(x0) in nats, for any mean-parameterized (or SEDD) denoiser."""
    return elbo_samples(denoiser, process, x0, n_t=n_t, generator=generator, attention_mask=attention_mask).mean(0)
