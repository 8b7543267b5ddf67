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
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from dlm.process.schedules import LogLinear, Schedule
from dlm.registry import ConfigError
from dlm.utils.shapes import per_sequence


class Process(ABC):
    """Base class. vocab_size = V data tokens; width = N categories the model reads and writes."""

    vocab_size: int
    width: int

    def __init__(self, vocab_size: int, schedule: Schedule | None = None):
        if vocab_size < 2:
            raise ConfigError(f"vocab_size must be at least 2, got {vocab_size}")
        self.vocab_size = vocab_size
        self.schedule = schedule or LogLinear()

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
        onehot = torch.nn.functional.one_hot(xt, self.width).to(dtype)
        a = per_sequence(alpha_ts.to(dtype), 3)
        return a * onehot + (1 - a) * self.limit(onehot)[xt].unsqueeze(-1)

    def clean_mask(self, like: Tensor) -> Tensor:
        """Which of the N categories clean data can take: bool (N,) on like's device. All of them by default."""
        return torch.ones(self.width, dtype=torch.bool, device=like.device)

    # --- derived -----------------------------------------------------------------------------------------
    def posterior(self, xt: Tensor, x0_probs: Tensor, t: Tensor, s: Tensor) -> Tensor:
        """p(x_s | x_t) = normalize( q(x_t | x_s) * q(x_s | x0 ~ x0_probs) ), float64.  -> (B, L, N)."""
        alpha_t, alpha_s = self.schedule.alpha(t.double()), self.schedule.alpha(s.double())
        unnormalized = self.kernel(xt, alpha_t / alpha_s) * self.marginal(x0_probs.double(), alpha_s)
        return unnormalized / unnormalized.sum(-1, keepdim=True)

    def concrete_score(self, xt: Tensor, x0_probs: Tensor, t: Tensor) -> Tensor:
        """Mean parameterization -> concrete score s_y = p_t(y | x_t^{-l}) / p_t(x_t^l | x_t^{-l}), float64 (B, L, N).

        s = marginal(x_theta, alpha_t) / marginal(x_theta, alpha_t)[x_t]. Absorbing at a mask: s_y = alpha x_theta(y)
        / (1 - alpha) = x_theta(y) / expm1(sigma) (MDLM get_score, ALGORITHMS §2.8); at the current token s = 1.
        """
        bar = self.marginal(x0_probs.double(), self.schedule.alpha(t.double()))
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

    def check_tokens(self, x0: Tensor) -> None:
        """Raise a one-line ConfigError when data ids fall outside [0, vocab_size)."""
        check_token_range(x0, self.vocab_size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, schedule={self.schedule!r})"


def check_token_range(x0: Tensor, vocab_size: int) -> None:
    """Raise a one-line ConfigError unless x0 is an integer tensor with ids in [0, vocab_size)."""
    if x0.dtype not in (torch.int64, torch.int32):
        raise ConfigError(f"token ids must be an integer tensor, got {x0.dtype}")
    if x0.numel() and (int(x0.min()) < 0 or int(x0.max()) >= vocab_size):
        bad = int(x0.max()) if int(x0.max()) >= vocab_size else int(x0.min())
        raise ConfigError(f"token id {bad} is out of range for vocab_size {vocab_size}; "
                          "does the tokenizer match the model's vocabulary?")
