"""Forward corruption chains q(x_t | x_0) that factorize over positions.

Every process here is a "mixture with a fixed distribution" (D3PM, arXiv 2107.03006; MD4, arXiv 2406.04329):
    q(x_t | x_0) = alpha_t * onehot(x_0) + (1 - alpha_t) * pi,
with pi = onehot(mask) (absorbing) or uniform (uniform). Everything a sampler or a loss needs follows from two
primitives, `marginal` and `kernel`:
    posterior q(x_s = j | x_t, x0 ~ p) ∝ q(x_t | x_s = j) * sum_x0 q(x_s = j | x0) p(x0)     (s < t),
which for a mean-parameterized denoiser p = x_theta is the D3PM/MDLM reverse step p_theta(x_s | x_t).

What x_theta means. This "linear" reverse step, and the ELBOs of objectives/, are exact when x_theta^l is the
posterior of x0^l given the OTHER positions, p(x0^l | x_t^{-l}): then marginal(x_theta, alpha_t)_y / marginal_z
= p_t(y | x_t^{-l}) / p_t(z | x_t^{-l}), the exact concrete score. This is what the masked and uniform ELBOs are
minimized by. For absorbing it coincides with p(x0^l | x_t) at masked positions; for uniform it does not (plugging
p(x0^l | x_t) in would double-count the evidence of the current token). Oracles in tests follow this definition.

What samplers read from a denoiser (the methods under "reverse"; DICE and the edit code read the same ones). A
denoiser returns either x_theta (MDLM SUBS, UDLM/Duo, RADD) or SEDD's log concrete score (arXiv 2310.16834); per
position the two are linked by
    s_y = bar_y / bar_{x_t},   bar = alpha_t x_theta + (1 - alpha_t) pi = marginal(x_theta, alpha_t)     (mean -> score)
    x_theta = (s / sum_y s_y - (1 - alpha_t) pi) / alpha_t                                          (score -> mean)
since sum_y bar_y = 1. For absorbing at a mask s_y = x_theta(y) / expm1(sigma) (docs/score_entropy.md). The Bayes
posterior of x0 itself is normalize(q_t(x_t | x0) x_theta(x0)). The forward generator is sigma'(t) (1 pi^T - I),
so the reverse rate out of x_t (docs/score_entropy.md#concrete-scores) is
    R_t(x_t -> y) = sigma'(t) pi_{x_t} s_y   (y != x_t):
absorbing: x_theta(y) sigma' / expm1(sigma) from a mask and 0 from a clean token; uniform: sigma' s_y / N.
All of them run in float64 on (B, L, N) tensors, t a (B,) tensor.

The bounds (the methods under "bounds"): `elbo_integrand` is the continuous-time ELBO integrand of a mean-
parameterized denoiser, `score_entropy` SEDD's score entropy on this graph, `prior_kl` the t = 1 term. The
objectives and eval/likelihood.py call them, so a new process is one file: subclass Process, define `limit`,
`prior` and `elbo_integrand` (and `score_entropy` if SEDD should train on it), register it in PROCESSES.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import ClassVar

import torch
from torch import Tensor

from dlm.process.schedules import LogLinear, Schedule
from dlm.registry import ConfigError
from dlm.types import Prediction
from dlm.utils.shapes import per_sequence
from dlm.validation import check_token_ids


class Capability(Enum):
    """What a process offers to samplers and objectives, which declare the capabilities they need (`needs`) instead
    of a list of process classes, so that a new process runs with every sampler whose needs it meets."""

    MASK_STATE = "mask_state"  # a mask id m, and the t = 1 law is all masks (prompt masking, CFG's null prompt)
    ABSORBING = "absorbing"  # a clean token never changes again: reverse steps only unmask (fused draws, remasking,
    #                          semi-AR blocks, row caches, SUBS)
    FIXED_MIXTURE = "fixed_mixture"  # q_t = alpha_t e_x + (1 - alpha_t) pi with pi fixed: reverse CTMC rates from a
    #                                  concrete score sigma'(t) pi_{x_t} s_y, the analytic step, score <-> mean
    UNIFORM_PRIOR = "uniform_prior"  # pi uniform over all N categories, no mask (the UDLM closed form, mixture draws)
    SCORE_ENTROPY = "score_entropy"  # SEDD's score entropy is defined on this graph


class Process(ABC):
    """Base class. vocab_size = V data tokens; width = N categories the model reads and writes. Every process has
    the closed-form posterior `posterior` (what the ancestral sampler needs); `capabilities` lists the rest."""

    vocab_size: int
    width: int
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.FIXED_MIXTURE})

    def __init__(self, vocab_size: int, schedule: Schedule | None = None):
        if vocab_size < 2:
            raise ConfigError(f"vocab_size must be at least 2, got {vocab_size}")
        self.vocab_size = vocab_size
        self.schedule = schedule or LogLinear()

    @classmethod
    def build(cls, vocab_size: int, schedule: Schedule, *, mask_id: int | None = None) -> Process:
        """The build step (Objective.from_config): mask_id is a tokenizer's own mask token, for processes that have
        one (Absorbing); the others ignore it."""
        return cls(vocab_size, schedule)

    # --- the two primitives -------------------------------------------------------------------------------
    @abstractmethod
    def limit(self, like: Tensor) -> Tensor:
        """The prior pi as probabilities, broadcastable to `like` (..., N)."""

    def marginal(self, x0_probs: Tensor, alpha: Tensor) -> Tensor:
        """q(x_t | x0 ~ x0_probs) = alpha x0_probs + (1 - alpha) pi.  x0_probs (B, L, N), alpha (B,) -> (B, L, N)."""
        a = per_sequence(alpha.to(x0_probs.dtype), x0_probs.ndim)
        return a * x0_probs + (1 - a) * self.limit(x0_probs)

    def kernel(self, xt: Tensor, alpha_ts: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
        """q(x_t = xt | x_s = j) for every j, with alpha_ts = alpha_t / alpha_s.  xt (B, L) -> (B, L, N)."""
        a = per_sequence(alpha_ts.to(dtype), 3)
        leak = (1 - a) * self.limit(a)[xt].unsqueeze(-1)  # (B, L, 1): pi_{x_t}
        at_xt = xt.unsqueeze(-1) == torch.arange(self.width, device=xt.device)  # bool: one pass, no float one-hot
        return torch.where(at_xt, a + leak, leak)

    def marginal_at(self, x0_probs: Tensor, t: Tensor) -> Tensor:
        """q_t(x_t | x0 ~ x0_probs) at times t (B,): x0_probs (B, L, N) -> (B, L, N) in x0_probs' dtype."""
        return self.marginal(x0_probs, self.schedule.alpha(t.to(torch.float64)))

    def likelihood(self, xt: Tensor, t: Tensor) -> Tensor:
        """q_t(x_t = xt | x0 = j) for every j, float64.  xt (B, L), t (B,) -> (B, L, N)."""
        return self.kernel(xt, self.schedule.alpha(t.double()))

    def transition(self, xt: Tensor, t: Tensor, s: Tensor) -> Tensor:
        """q(x_t = xt | x_s = j) for every j (s < t), float64.  xt (B, L), t and s (B,) -> (B, L, N)."""
        return self.kernel(xt, self.schedule.alpha(t.double()) / self.schedule.alpha(s.double()))

    def clean_mask(self, like: Tensor) -> Tensor:
        """Which of the N categories clean data can take: bool (N,) on like's device. All of them by default."""
        return torch.ones(self.width, dtype=torch.bool, device=like.device)

    # --- derived -----------------------------------------------------------------------------------------
    def posterior(self, xt: Tensor, x0_probs: Tensor, t: Tensor, s: Tensor) -> Tensor:
        """p(x_s | x_t) = normalize( q(x_t | x_s) * q(x_s | x0 ~ x0_probs) ), float64.  -> (B, L, N)."""
        unnormalized = self.transition(xt, t, s) * self.marginal_at(x0_probs.double(), s)
        return unnormalized / unnormalized.sum(-1, keepdim=True)

    def concrete_score(self, xt: Tensor, x0_probs: Tensor, t: Tensor) -> Tensor:
        """Mean parameterization -> concrete score s_y = p_t(y | x_t^{-l}) / p_t(x_t^l | x_t^{-l}), float64 (B, L, N).

        s = marginal(x_theta, alpha_t) / marginal(x_theta, alpha_t)[x_t]. Absorbing at a mask: s_y = alpha x_theta(y)
        / (1 - alpha) = x_theta(y) / expm1(sigma) (MDLM's get_score; docs/score_entropy.md); at the current token s = 1.
        """
        bar = self.marginal_at(x0_probs.double(), t)
        return bar / bar.gather(-1, xt.unsqueeze(-1))

    def corrupt(self, x0: Tensor, t: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """x_t ~ q(x_t | x_0): keep each token with probability alpha_t, else draw from pi.  x0 (B, L), t (B,)."""
        alpha = per_sequence(self.schedule.alpha(t.to(torch.float64)), 2)
        replace = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=torch.float64) >= alpha
        return torch.where(replace, self.prior(x0.shape, generator=generator, device=x0.device), x0)

    @abstractmethod
    def prior(self, shape: tuple[int, ...], *, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> Tensor:
        """A draw from the t=1 distribution pi, LongTensor of `shape`."""

    # --- reverse: what samplers read from a denoiser ---------------------------------------------------------
    def allowed_x0(self, xt: Tensor, t: Tensor) -> Tensor:
        """bool (B, L, N): the clean tokens x0 compatible with x_t, q_t(x_t | x0) > 0 and x0 not the mask."""
        return (self.likelihood(xt, t) > 0) & self.clean_mask(xt)

    def movable(self, xt: Tensor) -> Tensor:
        """bool (B, L): positions a reverse step can change (every one here; Absorbing: the masks only)."""
        return torch.ones(xt.shape, dtype=torch.bool, device=xt.device)

    def project_x0(self, x0_probs: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """Zero every x0 the data cannot be (the mask) or x_t rules out (q_t(x_t | x0) = 0: carry-over of clean
        tokens under absorbing), then renormalize; float64 (B, L, N). A row left with no mass becomes uniform over
        the allowed x0."""
        allowed = self.allowed_x0(xt, t)
        x0_probs = x0_probs.double().clamp_min(0) * allowed
        total = x0_probs.sum(-1, keepdim=True)
        if bool((total > 0).all()):  # the usual case: no fallback tensor to build
            return x0_probs / total.clamp_min(1e-300)
        fallback = allowed.double() / allowed.sum(-1, keepdim=True)
        return torch.where(total > 0, x0_probs / total.clamp_min(1e-300), fallback)

    def x0_from_score(self, score: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """Concrete score (B, L, N) -> x_theta (B, L, N): invert s proportional to alpha x_theta + (1 - alpha) pi."""
        alpha = per_sequence(self.schedule.alpha(t.double()), 3)
        bar = score.double() / score.double().sum(-1, keepdim=True)
        return self.project_x0((bar - (1 - alpha) * self.limit(bar)) / alpha, xt, t)

    def x0_probs(self, prediction: Prediction, xt: Tensor, t: Tensor) -> Tensor:
        """x_theta(x0^l | x_t) of either output as float64 probabilities (B, L, N), projected onto what x_t allows."""
        if prediction.log_probs is not None:
            return self.project_x0(prediction.log_probs.double().exp(), xt, t)
        return self.x0_from_score(prediction.log_score.double().exp(), xt, t)

    def prediction_score(self, prediction: Prediction, xt: Tensor, t: Tensor) -> Tensor:
        """s(x_t)_y ~ p_t(x_t^{l <- y}) / p_t(x_t) of either output per position, float64 (B, L, N); 1 at the
        current token."""
        if prediction.log_score is not None:
            return prediction.log_score.double().exp()
        return self.concrete_score(xt, self.x0_probs(prediction, xt, t), t)

    def reverse_rates(self, score: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """R_t(x_t -> y) = sigma'(t) pi_{x_t} s_y for y != x_t, and 0 at y = x_t (the stay entry).
        score (B, L, N) concrete score, xt (B, L), t (B,) -> float64 (B, L, N)."""
        pi_xt = self.limit(score)[xt].unsqueeze(-1)
        rates = per_sequence(self.schedule.dsigma(t.double()), 3) * pi_xt * score.double()
        return rates.scatter(-1, xt.unsqueeze(-1), 0.0)

    def mean_rates(self, x0_probs: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """The same rates from x_theta (B, L, N), with sigma' bar = -alpha' x_theta + sigma' (1 - alpha) pi expanded
        so that alpha_t = 0 (t = 1 under LogLinear(eps=0)) stays finite: R = pi_{x_t} (-alpha' x_theta + sigma'
        (1 - alpha) pi) / bar_{x_t}, 0 at the current token and out of states pi does not reach (clean tokens under
        absorbing). -> float64 (B, L, N)."""
        schedule, t = self.schedule, t.double()
        alpha, dalpha, dsigma = (per_sequence(f(t), 3) for f in (schedule.alpha, schedule.dalpha, schedule.dsigma))
        pi = self.limit(x0_probs)
        leak = torch.where(pi > 0, dsigma * (1 - alpha) * pi, torch.zeros_like(dsigma * pi))
        bar_xt = self.marginal(x0_probs.double(), alpha.flatten()).gather(-1, xt.unsqueeze(-1))
        pi_xt = pi[xt].unsqueeze(-1)
        rates = torch.where(pi_xt > 0, pi_xt * (-dalpha * x0_probs.double() + leak) / bar_xt, 0.0)
        return rates.scatter(-1, xt.unsqueeze(-1), 0.0)

    def x0_posterior(self, x0_probs: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """Bayes p(x0^l | x_t) = normalize(q_t(x_t | x0) x_theta(x0)): the law of the jump t -> 0.
        x0_probs (B, L, N) -> float64 (B, L, N)."""
        joint = self.likelihood(xt, t) * x0_probs.double()
        return joint / joint.sum(-1, keepdim=True)

    # --- bounds: what the objectives and eval/likelihood.py integrate ---------------------------------------
    @abstractmethod
    def elbo_integrand(self, log_probs: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """(B, L) per-token integrand (nats, float32) at t of the continuous-time ELBO of a mean-parameterized
        denoiser: log_probs = log x_theta (B, L, N), x0 and xt (B, L), t (B,). Its t-average over U(0, 1), plus
        `prior_kl` per position, bounds -log p(x0)."""

    def prior_kl(self) -> float:
        """KL(q(x_1 | x0) || pi) per position in nats; 0 when the chain reaches pi exactly at t = 1."""
        return 0.0

    def score_entropy(self, log_score: Tensor, x0: Tensor, xt: Tensor, sigma: Tensor,
                      offset: Tensor | None = None) -> Tensor:
        """SEDD's score entropy SE (B, L) float64 of a log concrete score (B, L, N) at total noise sigma (B,); the
        score is log_score - offset (offset (B,): `log_score_offset`, None = 0) and is read as 0 at x_t, so raw
        network output can be passed. The (B, L, N) reductions run in log_score's dtype."""
        raise ConfigError(f"process {type(self).__name__} defines no score entropy; train it with an ELBO objective")

    def score_entropy_integrand(self, log_score: Tensor, x0: Tensor, xt: Tensor, t: Tensor,
                                offset: Tensor | None = None) -> Tensor:
        """sigma'(t) * SE: the per-token DSE bound integrand (B, L), float32; offset: see score_entropy."""
        sigma, dsigma = self.schedule.sigma(t.double()), self.schedule.dsigma(t.double())
        se = self.score_entropy(log_score, x0, xt, sigma, offset)
        return (per_sequence(dsigma, 2) * se).float()

    def log_score_offset(self, sigma: Tensor, width: int) -> Tensor | None:
        """(B,) log score of an uninformed model at total noise sigma (B,), which SEDD's scale_by_sigma subtracts
        from the network output; None (no scaling) unless the process overrides it."""
        return None

    def scale_log_score(self, h: Tensor, sigma: Tensor) -> Tensor:
        """SEDD's scale_by_sigma: the network output h (B, L, N) minus `log_score_offset`, so that h = 0 means
        "no information". A copy of h when the process defines no offset."""
        offset = self.log_score_offset(sigma, h.shape[-1])
        return h.clone() if offset is None else h - per_sequence(offset.to(h.dtype), h.ndim)

    def check_tokens(self, x0: Tensor) -> None:
        """Raise a one-line ConfigError when data ids fall outside [0, vocab_size)."""
        check_token_ids(x0, self.vocab_size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, schedule={self.schedule!r})"


def expm1_sigma(sigma: Tensor) -> Tensor:
    """e^sigma - 1 = (1 - alpha) / alpha, with expm1 where sigma < 0.5 (the SEDD switch)."""
    return torch.where(sigma < 0.5, torch.expm1(sigma), torch.exp(sigma) - 1)


class MaskPrior:
    """The t = 1 law of a process whose prior is all masks (mask_id; absorbing, GIDD): a mixin for Process
    subclasses, so that the mask's point mass, the clean categories and the prior are written once."""

    mask_id: int
    width: int

    def limit(self, like: Tensor) -> Tensor:
        """pi = onehot(mask_id), (width,) in like's dtype and device."""
        pi = torch.zeros(self.width, dtype=like.dtype, device=like.device)
        pi[self.mask_id] = 1
        return pi

    def clean_mask(self, like: Tensor) -> Tensor:
        """Every category but the mask id: x0 is never the mask."""
        keep = torch.ones(self.width, dtype=torch.bool, device=like.device)
        keep[self.mask_id] = False
        return keep

    def prior(self, shape, *, generator=None, device=None) -> Tensor:
        """All masks: the prior draws no noise."""
        return torch.full(tuple(shape), self.mask_id, dtype=torch.long, device=device)
