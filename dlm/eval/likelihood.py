"""ELBO / perplexity bound of any denoiser under a process, with Monte Carlo samples of t.

    -log p(x0) <= E_{t ~ U(0,1)} E_{x_t ~ q_t(.|x0)} [ sum_l integrand_l(t) ]   (+ a prior term for uniform)
The integrand is the process's own, chosen by what the denoiser returns: log_probs -> process.elbo_integrand (the
masked ELBO for absorbing, the UDLM/Duo ELBO for uniform; docs/likelihood.md); log_score (SEDD) ->
process.score_entropy_integrand, sigma'(t) * score entropy (the DSE bound); process.prior_kl is the prior term.
t is drawn stratified over (0, 1] (n_t strata per sequence, each with its own jitter: a low-discrepancy RADD-style
estimate). For absorbing processes with alpha_1 > 0 (LogLinear eps) the bound misses a term of order eps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dlm.denoiser import Denoiser, as_prediction
from dlm.process.base import Capability, Process
from dlm.registry import ConfigError
from dlm.types import Prediction
from dlm.validation import check_attention_mask, check_batch, check_positive


def integrand(process: Process, prediction: Prediction, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
    """(B, L) per-token integrand of the bound at t for this denoiser output, the process's own."""
    if prediction.log_score is not None:
        return process.score_entropy_integrand(prediction.log_score, x0, xt, t)
    return process.elbo_integrand(prediction.log_probs, x0, xt, t)


def stratified_times(n_t: int, batch: int, *, generator: torch.Generator | None = None,
                     device: torch.device | None = None) -> Tensor:
    """(n_t * batch,) float64 times, t-major: entry k * batch + b lies in stratum k, ((k + U_kb) / n_t), of (0, 1]."""
    strata = torch.arange(n_t, device=device, dtype=torch.float64)
    jitter = torch.rand(batch, n_t, generator=generator, device=device, dtype=torch.float64)
    return ((strata + jitter) / n_t).T.reshape(-1).clamp_min(1e-6)


@torch.no_grad()
def elbo_samples(denoiser: Denoiser, process: Process, x0: Tensor, *, n_t: int = 128,
                 generator: torch.Generator | None = None, attention_mask: Tensor | None = None,
                 batch_size: int | None = None, clean: Tensor | None = None) -> Tensor:
    """(n_t, B) per-sequence bounds, nats: one stratified t per row; their mean over n_t is `elbo`.
    clean: bool (B, L) positions never noised (context; give them zero weight in attention_mask)."""
    check_batch(x0)
    process.check_tokens(x0)
    check_positive("n_t", n_t)
    check_attention_mask(attention_mask, x0)
    B, L = x0.shape
    times = stratified_times(n_t, B, generator=generator, device=x0.device)
    weights = torch.ones_like(x0, dtype=torch.float32) if attention_mask is None else attention_mask.float()
    chunk = batch_size or max(B, 8192 // L)
    out = []
    x0_rep = x0.repeat(n_t, 1)
    w_rep = weights.repeat(n_t, 1)
    clean_rep = None if clean is None else clean.expand(B, L).repeat(n_t, 1)
    for start in range(0, n_t * B, chunk):
        x, t = x0_rep[start:start + chunk], times[start:start + chunk]
        xt = process.corrupt(x, t, generator=generator)
        xt = xt if clean_rep is None else torch.where(clean_rep[start:start + chunk], x, xt)
        per_token = integrand(process, as_prediction(denoiser(xt, t.float())), x, xt, t)
        out.append((per_token * w_rep[start:start + chunk]).double().sum(-1))
    return torch.cat(out).view(n_t, B) + process.prior_kl() * weights.double().sum(-1)


def elbo(denoiser: Denoiser, process: Process, x0: Tensor, *, n_t: int = 128,
         generator: torch.Generator | None = None, attention_mask: Tensor | None = None) -> Tensor:
    """(B,) Monte Carlo bound on -log p(x0) in nats, for any mean-parameterized (or SEDD) denoiser."""
    return elbo_samples(denoiser, process, x0, n_t=n_t, generator=generator, attention_mask=attention_mask).mean(0)


@torch.no_grad()
def conditional_elbo_samples(denoiser: Denoiser, process: Process, x0: Tensor, target_mask: Tensor, *,
                             n_t: int = 128, generator: torch.Generator | None = None,
                             batch_size: int | None = None) -> Tensor:
    """(n_t, B) bounds on -log p(x0[target] | x0[~target]) in nats, one stratified t per row (mean: conditional_elbo).

    x0 (B, L); target_mask bool (B, L) or (1, L): the continuation c = x0[target]; the rest is the context y.
    Only the target positions are noised; the context stays clean in x_t and is never scored:
        -log p(c | y) <= int_0^1 E_{c_t ~ q_t(.|c)} [ sum_{l in target} integrand_l(t; x_t = (y, c_t)) ] dt
                         (+ the prior KL of the target positions for uniform processes).
    Why it is a bound: with y fixed, the reverse process that starts from the prior on the target positions and
    calls the denoiser on (y, c_t) is a generative model of c given y, and the integrand summed over target
    positions is its continuous-time ELBO, for any denoiser (the per-position decomposition of docs/likelihood.md).
    Absorbing (masked; LLaDA's conditional likelihood, arXiv 2502.09992, with t in place of
    LLaDA's mask count): under the joint chain p_t(c_t, y clean) = alpha_t^{|y|} p(y) p_t(c_t | y), so the exact
    denoiser p(x0^l | x_t^{-l}) at states with y clean is the exact denoiser of the conditional chain and the bound is
    tight (equality, up to the eps term). Uniform / SEDD: still a valid bound, but not tight even for the exact
    joint denoiser, which treats the clean context as possibly noised (for uniform noise q_t(y | y) != 1).
    """
    check_batch(x0)
    process.check_tokens(x0)
    check_positive("n_t", n_t)
    B, L = x0.shape
    target = target_mask.to(device=x0.device, dtype=torch.bool).expand(B, L)
    times = stratified_times(n_t, B, generator=generator, device=x0.device)
    chunk = batch_size or max(B, 8192 // L)
    x0_rep, target_rep = x0.repeat(n_t, 1), target.repeat(n_t, 1)
    out = []
    for start in range(0, n_t * B, chunk):
        x, keep, t = x0_rep[start:start + chunk], target_rep[start:start + chunk], times[start:start + chunk]
        xt = torch.where(keep, process.corrupt(x, t, generator=generator), x)
        per_token = integrand(process, as_prediction(denoiser(xt, t.float())), x, xt, t)
        out.append((per_token * keep).double().sum(-1))
    return torch.cat(out).view(n_t, B) + process.prior_kl() * target.double().sum(-1)


def conditional_elbo(denoiser: Denoiser, process: Process, x0: Tensor, target_mask: Tensor, *, n_t: int = 128,
                     generator: torch.Generator | None = None) -> Tensor:
    """(B,) Monte Carlo bound on -log p(x0[target] | x0[~target]), nats (see conditional_elbo_samples)."""
    return conditional_elbo_samples(denoiser, process, x0, target_mask, n_t=n_t, generator=generator).mean(0)


MAX_EXACT_TARGETS = 8  # 2^8 - 1 = 255 mask patterns: beyond that the Monte Carlo conditional_elbo is cheaper


@torch.no_grad()
def masked_conditional_nll(denoiser: Denoiser, process: Process, x0: Tensor, target_mask: Tensor) -> Tensor:
    """(B,) the absorbing bound on -log p(x0[target] | x0[~target]), nats, with its time integral done exactly.

    For a denoiser that ignores t (MDLM / RADD without time conditioning) the masked bound depends on t only
    through the masked set M (each target position masked w.p. m = 1 - alpha_t), so with dm = -alpha'_t dt
        int_0^1 (1/m) E_{M ~ Bern(m)^n} [f(M)] dm = sum_{M != {}} B(|M|, n - |M| + 1) f(M)
                                                  = sum_{k=1}^n (1/k) mean_{|M| = k} f(M),
    f(M) = sum_{l in M} -log x_theta(x0^l | x0 with M masked) (LLaDA's form, arXiv 2502.09992 eq. 12, summed
    instead of sampled). It is conditional_elbo's expectation in the eps -> 0 limit, with no Monte Carlo error:
    one forward per non-empty subset of the n target positions (n <= MAX_EXACT_TARGETS) and distinct masked row.
    x0 (B, L); target_mask bool (L,) or (1, L), the same positions for every row; t passed to the denoiser is
    |M| / (n + 1), inside (0, 1) (ignored by the models this is meant for).
    """
    check_batch(x0)
    process.check_tokens(x0)
    target = torch.as_tensor(target_mask, dtype=torch.bool, device=x0.device).reshape(-1)
    if target.numel() != x0.shape[1] or Capability.ABSORBING not in process.capabilities:
        raise ConfigError("masked_conditional_nll needs an absorbing process and one (L,) target mask for all rows")
    positions = target.nonzero().flatten()
    n = len(positions)
    if not 1 <= n <= MAX_EXACT_TARGETS:
        raise ConfigError(f"masked_conditional_nll enumerates 2^n - 1 mask patterns; n = {n} target positions "
                          f"must lie in [1, {MAX_EXACT_TARGETS}]; use conditional_elbo (Monte Carlo) instead")
    total = torch.zeros(x0.shape[0], dtype=torch.float64, device=x0.device)
    for pattern in range(1, 2**n):
        masked = positions[[bit for bit in range(n) if pattern >> bit & 1]]  # (k,)
        k = len(masked)
        xt = x0.clone()
        xt[:, masked] = process.mask_id
        # rows that agree outside M (candidate captions differing only there) share one forward
        unique, inverse = torch.unique(xt, dim=0, return_inverse=True)  # (U, L), (B,)
        t = torch.full((len(unique),), k / (n + 1), device=x0.device)  # inside (0, 1), about the masked fraction
        prediction = as_prediction(denoiser(unique, t))
        if prediction.log_probs is None:
            raise ConfigError("masked_conditional_nll needs a mean-parameterized denoiser (log_probs), not a score; "
                              "use conditional_elbo")
        log_probs = prediction.log_probs[:, masked][inverse]  # (B, k, N)
        nll = -log_probs.gather(-1, x0[:, masked, None]).squeeze(-1)  # (B, k)
        total += nll.double().sum(-1) / (k * math.comb(n, k))
    return total
