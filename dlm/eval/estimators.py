"""Monte Carlo estimators of a dataset's per-token NLL bound, and their standard error over the draws of t and x_t.

For blocks x0_i (i = 1..N) with n_i scored tokens, the target is
    nll = sum_i E[b_i] / sum_i n_i,     b_i = sum_l integrand_l(t, x_t) (+ prior term) >= -log p(x0_i),
estimated from K draws b_i^(k) per block by  nll_hat = sum_i mean_k b_i^(k) / sum_i n_i.
Estimators (the draws of t), registered in ESTIMATORS and built once from their name by TimeSampling:
  mdlm: MDLM's estimate (arXiv 2406.07524; docs/likelihood.md): one t per block, stratified within the batch
        (the objective's time_sampler and sampling_eps; t in [eps, 1]); K = n_t independent passes. The strata
        are shuffled over the rows so that every block's t is marginally uniform: with a fixed data order, row i
        of every batch always getting stratum i would bias the estimate of a fixed dataset.
  many: RADD-style (arXiv 2406.03736; docs/likelihood.md): n_t low-discrepancy t per block, one in each stratum
        ((k + U) / n_t) of (0, 1] (likelihood.elbo_samples).
  objective: the objective's own stratified draws (objective.elbo_samples; block diffusion), read as `many`.
  exact: the autoregressive baseline (and block diffusion at block size 1), K = 1 and no Monte Carlo error.
Standard error (the Monte Carlo error for this fixed dataset; nll_hat is linear in the b's, so
Var = sum_i Var(mean_k b_i^(k)) / (sum_i n_i)^2):
  mdlm, K >= 2: the sample variance of the K independent draws of each block, / K.
  many, K >= 2: collapsed strata, sum_pairs (b^(2j) - b^(2j+1))^2 / K^2 (scaled by K / 2P for P pairs): adjacent
        strata are paired, which is slightly conservative (it also counts the change of the mean between strata).
  K = 1: the Monte Carlo variance of a block is not identifiable from one draw; the spread of b_i - nll_hat n_i
        over blocks is used. It also contains the block-to-block variation, so in mean square it bounds the MC
        error from above.
The masked draws are heavy-tailed: the weight 1/t meets a masked token with probability ~ t, so the variance of
one draw grows like log(1/eps). With long blocks (many tokens per t) and hundreds of blocks the normal interval
nll_hat +- 2 se is accurate (tests/eval/test_estimators.py checks its coverage); with a handful of short blocks it
undercovers on the low side.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor

from dlm.denoiser import Denoiser, as_prediction
from dlm.eval.likelihood import elbo_samples, integrand
from dlm.objectives.time_sampling import TimeSampler, get_time_sampler
from dlm.process.base import Process
from dlm.registry import ESTIMATORS, ConfigError


@dataclass(frozen=True)
class TimeSampling:
    """How t is drawn: estimator (mdlm | many | exact), n_t draws per block, time_sampler and eps (mdlm only).
    `strategy` is the registered Estimator the name becomes (built here, once)."""

    estimator: str
    n_t: int = 1
    time_sampler: str = "stratified"
    eps: float = 1e-3
    strategy: Estimator = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.n_t < 1:
            raise ConfigError(f"n_t must be at least 1, got {self.n_t}")
        object.__setattr__(self, "strategy", ESTIMATORS.get_factory(self.estimator).build(self))


@dataclass(frozen=True)
class NLLEstimate:
    """nll: nats per token (a bound, or exact for AR); se: its Monte Carlo standard error; se_method: how."""

    nll: float
    se: float
    se_method: str
    num_tokens: int
    num_blocks: int

    @property
    def ppl(self) -> float:
        return math.exp(self.nll)

    @property
    def ppl_se(self) -> float:
        """Delta method: se(exp(nll)) = exp(nll) se(nll)."""
        return math.exp(self.nll) * self.se

    def as_dict(self) -> dict[str, float | int | str]:
        """Flat dict: nll, nll_se, ppl, ppl_se, bits_per_token, bits_per_token_se, num_tokens, num_blocks, se_method."""
        return {"nll": self.nll, "nll_se": self.se, "ppl": self.ppl, "ppl_se": self.ppl_se,
                "bits_per_token": self.nll / math.log(2), "bits_per_token_se": self.se / math.log(2),
                "num_tokens": self.num_tokens, "num_blocks": self.num_blocks, "se_method": self.se_method}


class Estimator(ABC):
    """Draws (K, B) per-block bounds, and says how their mean's Monte Carlo variance is read off K >= 2 draws."""

    @classmethod
    def build(cls, sampling: TimeSampling) -> Estimator:
        return cls(sampling.n_t)

    def __init__(self, n_t: int):
        self.n_t = n_t

    @abstractmethod
    def samples(self, denoiser: Denoiser, process: Process, x0: Tensor, weights: Tensor, *,
                generator: torch.Generator | None = None, clean: Tensor | None = None) -> Tensor:
        """(K, B) draws of the per-block bound b_i (nats); weights (B, L) marks scored tokens, clean (B, L) the
        unscored context kept clean (b_i then bounds -log p(scored | clean))."""

    def block_variance(self, samples: Tensor) -> tuple[Tensor, str]:
        """samples (K >= 2, N) -> (N,) Var(mean_k b_i^(k)) per block, and the method's name."""
        raise NotImplementedError(f"{type(self).__name__} draws one sample per block")

    def standard_error(self, samples: Tensor, tokens: Tensor, nll: float) -> tuple[float, str]:
        """Standard error of nll = sum_i mean_k b_i^(k) / sum_i n_i; K = 1: the spread over blocks (module doc)."""
        K, N = samples.shape
        total = float(tokens.sum())
        if K == 1:
            resid = samples[0] - nll * tokens
            var = float((resid**2).sum()) * N / max(N - 1, 1) / total**2
            return math.sqrt(var), "between_blocks"
        var_blocks, method = self.block_variance(samples)
        return math.sqrt(float(var_blocks.sum())) / total, method


@ESTIMATORS.register("mdlm")
class OneTPerSequence(Estimator):
    """K = n_t passes of one t per block, stratified over the batch then shuffled (module doc)."""

    @classmethod
    def build(cls, sampling: TimeSampling) -> Estimator:
        return cls(sampling.n_t, get_time_sampler(sampling.time_sampler), sampling.eps)

    def __init__(self, n_t: int, time_sampler: TimeSampler, eps: float):
        super().__init__(n_t)
        self.time_sampler, self.eps = time_sampler, eps

    def samples(self, denoiser, process, x0, weights, *, generator=None, clean=None):
        return torch.stack([self.one_pass(denoiser, process, x0, weights, generator=generator, clean=clean)
                            for _ in range(self.n_t)])

    @torch.no_grad()
    def one_pass(self, denoiser: Denoiser, process: Process, x0: Tensor, weights: Tensor, *,
                 generator: torch.Generator | None = None, clean: Tensor | None = None) -> Tensor:
        """(B,) bounds b_i with one t per row: t = (1 - eps) u + eps, u stratified over the batch then shuffled.
        clean: bool (B, L) context positions never noised (and unscored: zero weight), as in conditional_elbo."""
        B = x0.shape[0]
        u = self.time_sampler.u(B, generator=generator, device=x0.device)
        t = ((1 - self.eps) * u + self.eps)[torch.randperm(B, generator=generator, device=x0.device)]
        xt = process.corrupt(x0, t, generator=generator)
        xt = xt if clean is None else torch.where(clean, x0, xt)
        per_token = integrand(process, as_prediction(denoiser(xt, t.float())), x0, xt, t)
        return (per_token * weights).double().sum(-1) + process.prior_kl() * weights.double().sum(-1)

    def block_variance(self, samples):
        return samples.var(0) / len(samples), "independent_draws"


@ESTIMATORS.register("many")
class StratifiedPerSequence(Estimator):
    """n_t low-discrepancy t per block, one in each stratum of (0, 1] (likelihood.elbo_samples)."""

    def samples(self, denoiser, process, x0, weights, *, generator=None, clean=None):
        return elbo_samples(denoiser, process, x0, n_t=self.n_t, generator=generator, attention_mask=weights,
                            clean=clean)

    def block_variance(self, samples):
        K = len(samples)
        pairs = K // 2
        diff = samples[0:2 * pairs:2] - samples[1:2 * pairs:2]
        return (diff**2).sum(0) * (K / (2 * pairs)) / K**2, "collapsed_strata"


@ESTIMATORS.register("objective")
class ObjectiveDraws(StratifiedPerSequence):
    """The objective's own n_t stratified draws per block (objective.elbo_samples), for an objective whose bound is
    not the process's integrand on one denoiser call (block diffusion: a time per block, two-stream forward).
    Chosen by the objective (Objective.likelihood_estimator)."""

    def samples(self, denoiser, process, x0, weights, *, generator=None, clean=None):
        return denoiser.objective.elbo_samples(denoiser, x0, n_t=self.n_t, generator=generator,
                                               attention_mask=weights, clean=clean)


@ESTIMATORS.register("exact")
class Exact(Estimator):
    """The model's exact -sum log p(x^l | x^{<l}) over the scored l (the autoregressive baseline): K = 1, no Monte
    Carlo error; the unscored positions are its context anyway (clean is not needed). Chosen by the objective
    (Objective.likelihood_estimator), which is what makes its elbo exact."""

    def samples(self, denoiser, process, x0, weights, *, generator=None, clean=None):
        return denoiser.elbo(x0, attention_mask=weights.bool()).unsqueeze(0)

    def standard_error(self, samples, tokens, nll):
        return 0.0, "exact"


def bound_samples(denoiser: Denoiser, process: Process, x0: Tensor, weights: Tensor, sampling: TimeSampling, *,
                  generator: torch.Generator | None = None, clean: Tensor | None = None) -> Tensor:
    """(K, B) draws of the per-block bound b_i (nats); weights (B, L) marks scored tokens, clean (B, L) the
    unscored context kept clean (b_i then bounds -log p(scored | clean))."""
    return sampling.strategy.samples(denoiser, process, x0, weights, generator=generator, clean=clean)


def summarize(samples: Tensor, tokens: Tensor, estimator: str | Estimator) -> NLLEstimate:
    """samples (K, N) per-block bounds, tokens (N,) scored tokens per block -> per-token NLL and its MC error.
    estimator: the Estimator that drew them (TimeSampling.strategy) or its registered name."""
    if isinstance(estimator, str):
        estimator = TimeSampling(estimator).strategy
    samples, tokens = samples.double(), tokens.double()
    total = float(tokens.sum())
    if total <= 0:
        raise ConfigError("no scored tokens: every block is padding")
    nll = float(samples.mean(0).sum()) / total
    se, method = estimator.standard_error(samples, tokens, nll)
    return NLLEstimate(nll, se, method, int(total), samples.shape[1])
