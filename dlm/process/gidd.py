"""GIDD: hybrid mask + uniform noise (von Rütte et al., "Generalized Interpolating Discrete Diffusion",
arXiv 2503.04482, §3 and §4; docs/gidd.md).

The marginal interpolates between the data, the mask m and the uniform law u over the clean tokens, with a noise
law that changes with t (paper §3, the GIDD marginal q_t = alpha_t e_x + beta_t pi_t):
    q_t(. | x) = alpha_t e_x + (beta pi)_t,    (beta pi)_t = (m_t e_m + c_t u) / C_t,    alpha_t = a_t / C_t,
where a_t = schedule.alpha(t) is the mask chain's keep probability, m_t = 1 - a_t, c_t = B sqrt(a_t m_t) and
C_t = 1 + c_t (paper §4, the mixing schedule with gamma = 1). B = 2 p_u / (1 - p_u), so that the uniform share c_t / C_t
peaks at p_u where a_t = 1/2 (t = 1/2 under LogLinear(eps=0)); p_u = 0 is the masked (MDLM) chain. q_0 = e_x, and
q_1 = e_m when a_1 = 0.

From s to t the chain keeps x_s with alpha_{t|s} = alpha_t / alpha_s and otherwise draws from
(beta pi)_{t|s} = (beta pi)_t - alpha_{t|s} (beta pi)_s (paper §3, the conditional transitions), so every token,
clean or not, can change in a reverse step. The forward rate into z from any other state is
    g_t(z) = (beta pi)'_t(z) - (alpha'_t / alpha_t) (beta pi)_t(z),
and the ELBO of a mean-parameterized denoiser x_theta (zero mass on m) is, per position, at z = x_t (paper §3, the
GIDD ELBO as KL plus Itakura-Saito divergence):
    L_t = w_t(z, x) [ KL(q_t(. | x) || q_t(. | x_theta)) + r - log r - 1 ],
    r = q_t(z | x) / q_t(z | x_theta),    w_t(z, x) = g_t(z) / q_t(z | x),
and -log p(x) <= int_0^1 E_{z ~ q_t(. | x)} L_t dt. With the exact x_theta the bound is tight (tests/core).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.process.base import Capability, MaskPrior, Process
from dlm.process.schedules import Schedule
from dlm.process.uniform import MixtureLogSum
from dlm.registry import PROCESSES, ConfigError
from dlm.utils.cross_entropy import gathered
from dlm.utils.shapes import per_sequence

TINY = 1e-30  # floor of the uniform share in logs: p_u = 0 (no uniform noise) stays finite


@PROCESSES.register("gidd")
class GIDD(MaskPrior, Process):
    """Hybrid noise: mask id appended at vocab_size (width vocab_size + 1) unless a tokenizer's own mask id is given;
    p_uniform is the peak share of uniform noise (paper §4; the released checkpoints use 0.0, 0.1 and 0.2)."""

    capabilities = frozenset({Capability.MASK_STATE})

    def __init__(self, vocab_size: int, schedule: Schedule | None = None, mask_id: int | None = None,
                 p_uniform: float = 0.1):
        super().__init__(vocab_size, schedule)
        if not 0 <= p_uniform < 1:
            raise ConfigError(f"p_uniform must lie in [0, 1), got {p_uniform}")
        self.mask_id = vocab_size if mask_id is None else mask_id
        if not 0 <= self.mask_id <= vocab_size:
            raise ConfigError(f"mask_id {self.mask_id} must lie in [0, vocab_size={vocab_size}]")
        self.width = vocab_size + 1 if self.mask_id == vocab_size else vocab_size
        self.n_clean = self.width - 1
        self.p_uniform, self.b = p_uniform, 2 * p_uniform / (1 - p_uniform)

    @classmethod
    def build(cls, vocab_size: int, schedule: Schedule, *, mask_id: int | None = None) -> GIDD:
        return cls(vocab_size, schedule, mask_id=mask_id)

    # --- the mixing schedule: scalars per row, float64 --------------------------------------------------------
    def shares(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(alpha_t, mask share m_t / C_t, uniform share per clean token c_t / (C_t V)), each (B,) float64."""
        a = self.schedule.alpha(t.double())
        c = self.b * torch.sqrt(a * (1 - a))
        C = 1 + c
        return a / C, (1 - a) / C, (c / (C * self.n_clean)).clamp_min(TINY)

    def rates_into(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """g_t(m) and g_t(v) for a clean v, (B,) float64: the forward rate into z from any other state."""
        t = t.double()
        a, da = self.schedule.alpha(t), self.schedule.dalpha(t)
        m = 1 - a
        c = self.b * torch.sqrt(a * m)
        dc = 0.5 * c * da * (1 / a - 1 / m)
        C = 1 + c
        log_alpha_rate = da / a - dc / C  # alpha'_t / alpha_t
        g_mask = -da / C - m * dc / C**2 - log_alpha_rate * m / C
        g_clean = (dc / C**2 - log_alpha_rate * c / C) / self.n_clean
        return g_mask, g_clean

    def noise(self, t: Tensor, like: Tensor) -> Tensor:
        """(beta pi)_t over the N categories: (B, 1, N) float64."""
        _, mask, uniform = self.shares(t)
        clean = self.clean_mask(like).double()
        return (per_sequence(uniform, 3) * clean + per_sequence(mask, 3) * (1 - clean)).to(like.device)

    # --- the t-based laws every derived method reads (process/base.py) ------------------------------------
    def marginal_at(self, x0_probs: Tensor, t: Tensor) -> Tensor:
        alpha = per_sequence(self.shares(t)[0], 3)
        return (alpha * x0_probs.double() + self.noise(t, x0_probs)).to(x0_probs.dtype)

    def likelihood(self, xt: Tensor, t: Tensor) -> Tensor:
        return self.transition(xt, t, torch.zeros_like(t))

    def transition(self, xt: Tensor, t: Tensor, s: Tensor) -> Tensor:
        """alpha_{t|s} 1(j = x_t) + (beta pi)_{t|s}(x_t): (beta pi)_{t|s} = (beta pi)_t - alpha_{t|s} (beta pi)_s."""
        like = torch.empty(0, dtype=torch.float64, device=xt.device)
        keep = self.shares(t)[0] / self.shares(s)[0]
        leak = self.noise(t, like) - per_sequence(keep, 3) * self.noise(s, like)  # (B, 1, N)
        leak_xt = leak.expand(-1, xt.shape[1], -1).gather(-1, xt.unsqueeze(-1))  # (B, L, 1)
        at_xt = xt.unsqueeze(-1) == torch.arange(self.width, device=xt.device)
        return torch.where(at_xt, per_sequence(keep, 3) + leak_xt, leak_xt)

    def marginal(self, x0_probs: Tensor, alpha: Tensor) -> Tensor:
        raise NotImplementedError("GIDD's noise law depends on t, not on alpha alone: use marginal_at(x0_probs, t)")

    def kernel(self, xt: Tensor, alpha_ts: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
        raise NotImplementedError("GIDD's transition depends on t and s: use transition(xt, t, s)")

    def corrupt(self, x0: Tensor, t: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """x_t ~ q_t(. | x0): keep w.p. alpha_t, else the mask w.p. m_t / C_t, else a uniform clean token."""
        alpha, mask, _ = (per_sequence(v, 2) for v in self.shares(t.to(x0.device)))
        u = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=torch.float64)
        noise = torch.randint(0, self.n_clean, x0.shape, generator=generator, device=x0.device)
        noise = noise + (noise >= self.mask_id).long()  # skip the mask id when it lies inside the vocabulary
        return torch.where(u < alpha, x0, torch.where(u < alpha + mask, torch.full_like(x0, self.mask_id), noise))

    def x0_from_score(self, score: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """Concrete score -> x_theta: invert s proportional to alpha_t x_theta + (beta pi)_t."""
        bar = score.double() / score.double().sum(-1, keepdim=True)
        alpha = per_sequence(self.shares(t)[0], 3)
        return self.project_x0((bar - self.noise(t, bar)) / alpha, xt, t)

    # --- the bound -------------------------------------------------------------------------------------------
    def elbo_integrand(self, log_probs: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """w_t(z, x) (KL + IS) of the module docstring -> (B, L) float32. log_probs = log x_theta (B, L, N) with
        (near) zero mass on the mask; the sum over the vocabulary runs in its dtype and keeps no (B, L, N) tensor
        for autograd (MixtureLogSum); the per-position combination is float64."""
        alpha, mask, uniform = (per_sequence(v, 2) for v in self.shares(t))  # (B, 1) each
        g_mask, g_clean = (per_sequence(v, 2) for v in self.rates_into(t))
        dtype, at_mask = log_probs.dtype, xt == self.mask_id
        log_alpha, log_uniform = torch.log(alpha), torch.log(uniform)
        # sum over clean v of log q_t(v | x_theta) = log(alpha x_theta_v + u); the mask column adds log u, removed
        total = MixtureLogSum.apply(log_probs, log_alpha.to(dtype).unsqueeze(-1), log_uniform.to(dtype).unsqueeze(-1))
        log_hat_sum = total.double() - (self.width - self.n_clean) * log_uniform
        log_hat_x0 = torch.logaddexp(gathered(log_probs, x0).double() + log_alpha, log_uniform)
        kl = (torch.xlogy(alpha + uniform, alpha + uniform) + (self.n_clean - 1) * uniform * torch.log(uniform)
              - alpha * log_hat_x0 - uniform * log_hat_sum)  # the mask terms m/C log(m/C) cancel
        noise_z = torch.where(at_mask, mask, uniform)
        q_z = alpha * (xt == x0) + noise_z
        log_hat_z = torch.logaddexp(gathered(log_probs, xt).double() + log_alpha, torch.log(noise_z))
        log_r = torch.log(q_z) - log_hat_z
        itakura_saito = torch.expm1(log_r) - log_r
        weight = torch.where(at_mask, g_mask, g_clean) / q_z
        return (weight * (kl + itakura_saito)).float()

    def check_tokens(self, x0: Tensor) -> None:
        super().check_tokens(x0)
        if self.mask_id < self.vocab_size and bool((x0 == self.mask_id).any()):
            raise ConfigError(f"clean data contains the mask id {self.mask_id}; it may only appear in x_t")
