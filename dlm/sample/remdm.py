"""ReMDM: remasking reverse steps, in which decoded tokens may return to the mask (Wang, Schiff, Sahoo, Kuleshov,
arXiv 2503.00307, §3-4; docs/samplers.md).

A step t -> s (alpha_t < alpha_s) with remasking probability sigma_t in [0, sigma_max], sigma_max = min(1, (1 - alpha_s)
/ alpha_t) (1 at alpha_t = 0), draws each position of the block independently (ReMDM's q_sigma, Eq. 5-6):
    decoded z_t = x   z_s = m w.p. sigma_t, else x                                  (SUBS: x_theta = e_x there)
    masked  z_t = m   z_s ~ x_theta w.p. (alpha_s - (1 - sigma_t) alpha_t) / (1 - alpha_t), else m
sigma = 0 is MDLM's ancestral step, exactly (same law, same draws). The bound keeps both probabilities in [0, 1]. With
the true x_theta the step keeps the forward marginals: P(z_t = x) = alpha_t gives P(z_s = x) = alpha_t (1 - sigma) +
(1 - alpha_t)(alpha_s - (1 - sigma) alpha_t) / (1 - alpha_t) = alpha_s for every valid sigma; a remasked token is
redrawn later from more context, which is how extra steps keep improving the samples (inference-time scaling).

Schedules (`schedule`; eta None takes the reference's value, kuleshov-group/remdm scripts at T = L = 1024):
    cap      sigma_t = min(eta, sigma_max)                                                        eta 0.008
    rescale  sigma_t = eta sigma_max, eta in [0, 1]                                               eta 0.015
    conf     sigma_t^l = eta^l sigma_max with eta = softmax over the block's decoded positions of psi^l = -p^l,
             p^l the probability its token had when it was drawn (after top-p): unsure tokens go back first.
             Masked positions take the MDLM step (sigma = 0 there), so the marginals are not kept. No eta.
    loop     alpha_on, t_on, t_off: for t > t_on MDLM steps on alpha_t = alpha_on (1 - t) / (1 - t_on); for
             t_off < t <= t_on a corrector at constant alpha_t = alpha_s = alpha_on with sigma = eta (decode and
             remask in balance, valid for eta <= (1 - alpha_on) / alpha_on); for t <= t_off MDLM steps on
             alpha_t = 1 - t (1 - alpha_on) / t_off. A step is in the phase of its t; the one crossing t_on
             stops at alpha_on (the reference's overshoots it by one step's worth, which passes alpha = 1 on a
             coarse grid).                                                                         eta 0.02
cap, rescale and conf read alpha_t off the process's schedule (the reference hard-codes alpha_t = 1 - t); loop has
its own alpha path and gives the denoiser the grid's t. Noise removal at the end resolves the masks left (`final`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.process.absorbing import Absorbing
from dlm.process.base import Capability
from dlm.registry import SAMPLERS, ConfigError, Registry
from dlm.sample.base import Sampler
from dlm.sample.chunks import PositionChunk
from dlm.sample.context import SamplingContext
from dlm.sample.fused import StepStage
from dlm.sample.grids import TimeGrid
from dlm.types import Prediction, StepOutput
from dlm.validation import check_finite

REMASK_SCHEDULES = Registry("remdm schedule")


def sigma_max(alpha_t: float, alpha_s: float) -> float:
    """The largest valid remasking probability of a step alpha_t -> alpha_s: min(1, (1 - alpha_s) / alpha_t)."""
    return 1.0 if alpha_t <= 0 else min(1.0, (1 - alpha_s) / alpha_t)


def mask_stay(alpha_t: float, alpha_s: float, sigma: float) -> float:
    """P(z_s = m | z_t = m) = (1 - alpha_s - sigma alpha_t) / (1 - alpha_t): in [0, 1] for 0 <= sigma <= sigma_max."""
    return (1 - alpha_s - sigma * alpha_t) / (1 - alpha_t)


class RemaskSchedule(ABC):
    """alpha_t, alpha_s and sigma_t of the step t -> s. by_confidence: sigma is sigma_max, scaled per position."""

    default_eta: float | None = None
    by_confidence = False

    def __init__(self, eta: float | None):
        self.eta = self.default_eta if eta is None else eta

    def alphas(self, process: Absorbing, t: float, s: float) -> tuple[float, float]:
        alpha = process.schedule.alpha(torch.tensor([t, s], dtype=torch.float64))
        return float(alpha[0]), float(alpha[1])

    @abstractmethod
    def sigma(self, alpha_t: float, alpha_s: float, t: float) -> float: ...


@REMASK_SCHEDULES.register("cap")
class Cap(RemaskSchedule):
    default_eta = 0.008

    def sigma(self, alpha_t, alpha_s, t):
        return min(self.eta, sigma_max(alpha_t, alpha_s))


@REMASK_SCHEDULES.register("rescale")
class Rescale(RemaskSchedule):
    default_eta = 0.015

    def __init__(self, eta):
        super().__init__(eta)
        if self.eta > 1:
            raise ConfigError(f"remdm rescale: eta scales sigma_max and must be in [0, 1], got {self.eta}")

    def sigma(self, alpha_t, alpha_s, t):
        return self.eta * sigma_max(alpha_t, alpha_s)


@REMASK_SCHEDULES.register("conf")
class Conf(RemaskSchedule):
    by_confidence = True

    def __init__(self, eta):
        if eta is not None:
            raise ConfigError("remdm conf: the confidence schedule has no eta (sigma_max is shared by confidence)")
        super().__init__(eta)

    def sigma(self, alpha_t, alpha_s, t):
        return sigma_max(alpha_t, alpha_s)


@REMASK_SCHEDULES.register("loop")
class Loop(RemaskSchedule):
    default_eta = 0.02

    def __init__(self, eta, t_on: float, t_off: float, alpha_on: float):
        super().__init__(eta)
        self.t_on, self.t_off, self.alpha_on = t_on, t_off, alpha_on
        if not (0 <= t_off < t_on < 1 and 0 < alpha_on < 1):
            raise ConfigError(f"remdm loop: need 0 <= t_off < t_on < 1 and 0 < alpha_on < 1, got t_off={t_off}, "
                              f"t_on={t_on}, alpha_on={alpha_on}")
        if self.eta > (1 - alpha_on) / alpha_on:
            raise ConfigError(f"remdm loop: eta={self.eta} exceeds sigma_max = (1 - alpha_on) / alpha_on = "
                              f"{(1 - alpha_on) / alpha_on:.4g} at alpha_on={alpha_on}")

    def alphas(self, process, t, s):
        if t > self.t_on:
            return self.alpha_on * (1 - t) / (1 - self.t_on), min(self.alpha_on * (1 - s) / (1 - self.t_on),
                                                                  self.alpha_on)
        if t > self.t_off:
            return self.alpha_on, self.alpha_on
        return 1 - t * (1 - self.alpha_on) / self.t_off, 1 - s * (1 - self.alpha_on) / self.t_off

    def sigma(self, alpha_t, alpha_s, t):
        return self.eta if self.t_off < t <= self.t_on else 0.0


@SAMPLERS.register("remdm")
@dataclass
class ReMDM(Sampler):
    """schedule: cap, rescale, conf or loop (module docstring); eta: its remasking level (None: the reference's);
    t_on, t_off, alpha_on: the loop's phases. top_p is the reference's nucleus (0.9 in its scripts)."""

    schedule: str = "cap"
    eta: float | None = None
    t_on: float = 0.55
    t_off: float = 0.05
    alpha_on: float = 0.9

    needs = frozenset({Capability.ABSORBING})

    def __post_init__(self):
        super().__post_init__()
        if self.eta is not None:
            check_finite("eta", self.eta)
            if self.eta < 0:
                raise ConfigError(f"remdm: eta must be >= 0, got {self.eta}")
        loop = {"t_on": self.t_on, "t_off": self.t_off, "alpha_on": self.alpha_on} if self.schedule == "loop" else {}
        self.remask: RemaskSchedule = REMASK_SCHEDULES.build(self.schedule, self.eta, **loop)

    def uses_x0(self, prediction: Prediction) -> bool:
        return True  # the posterior reads x_theta (score models through x0_from_score)

    def levels(self, process: Absorbing, t: float, s: float) -> tuple[float, float, float]:
        """(alpha_t, alpha_s, sigma_t) of the step t -> s (sigma_max for the conf schedule)."""
        alpha_t, alpha_s = self.remask.alphas(process, t, s)
        return alpha_t, alpha_s, self.remask.sigma(alpha_t, alpha_s, t)

    def stay(self, process: Absorbing, hist: list[Tensor], t: float, s: float) -> float:
        alpha_t, alpha_s, sigma = self.levels(process, t, s)
        return mask_stay(alpha_t, alpha_s, 0.0 if self.remask.by_confidence else sigma)

    def stage_probs(self, ctx: SamplingContext, hist: list[Tensor], memo: dict, t: float, s: float) -> Tensor:
        """The step's law at every position (module docstring) -> (B, L, N); not for conf (it reads the past)."""
        if self.remask.by_confidence:
            raise ConfigError("remdm conf: the step depends on the probabilities tokens were drawn with, not only "
                              "on x_t, so it has no per-step law")
        xt, mask_id = hist[0], ctx.process.mask_id
        x0 = self.x0_probs(ctx, xt, t)  # (B, L, N): e_{x_t} at decoded positions (x_t pins x0), x_theta at masks
        x0 = x0 / x0.sum(-1, keepdim=True)  # top-k / top-p leave it unnormalized
        alpha_t, alpha_s, sigma = self.levels(ctx.process, t, s)
        back = torch.full(xt.shape, sigma, dtype=torch.float64, device=xt.device)  # P(z_s = m) per position
        back[xt == mask_id] = self.stay(ctx.process, hist, t, s)
        back = back.unsqueeze(-1)
        law = (1 - back) * x0
        law[..., mask_id] += back[..., 0]
        return law

    def step(self, ctx: SamplingContext, xt: Tensor, grid: TimeGrid, i: int) -> StepOutput:
        """Masked positions: the fused draw (as ancestral, with ReMDM's stay probability); decoded positions of the
        block: back to the mask w.p. sigma, one uniform each (none when sigma = 0)."""
        t, s = grid.t(i), grid.s(i)
        mask_id, width = ctx.process.mask_id, xt.shape[1]
        memos: dict = {}

        def law(c: SamplingContext, hist: list[Tensor], memo: dict) -> Tensor:
            return self.stage_probs(c, hist, memo, t, s)

        xs = self.draw(ctx, [xt], memos, law, xt == mask_id, StepStage(self, t, s))
        decoded = xt != mask_id
        if ctx.editable is not None:
            decoded &= ctx.editable
        _, _, sigma = self.levels(ctx.process, t, s)
        if self.remask.by_confidence:
            psi = ctx.state.setdefault("remdm_psi", torch.full(xt.shape, float("-inf"), dtype=torch.float64,
                                                                device=xt.device))
            sigma = sigma * torch.softmax(psi.masked_fill(~decoded, float("-inf")), -1).nan_to_num(0.0)
        if isinstance(sigma, Tensor) or sigma > 0:
            flat = decoded.flatten().nonzero()[:, 0]
            u = ctx.uniform((len(flat),), xt.device, rows=flat // width)
            chance = sigma.flatten()[flat] if isinstance(sigma, Tensor) else sigma
            xs.view(-1)[flat[u < chance]] = mask_id
        if self.remask.by_confidence:
            self._remember_confidence(ctx, xt, xs, t, memos.get("predictions", {}))
        return StepOutput(xs=xs)

    def _remember_confidence(self, ctx: SamplingContext, xt: Tensor, xs: Tensor, t: float, predictions: dict) -> None:
        """conf: psi = -p(token) where a token was just drawn (p: x_theta after top-p), -inf where one was remasked."""
        mask_id, psi = ctx.process.mask_id, ctx.state["remdm_psi"]
        psi[(xt != mask_id) & (xs == mask_id)] = float("-inf")
        flat = ((xt == mask_id) & (xs != mask_id)).flatten().nonzero()[:, 0]
        if len(flat):
            chunk = PositionChunk(ctx, self.predict, [xt], flat, predictions)
            probs = self.masked_x0(chunk, chunk.hist[0], t)  # (n, N)
            psi.view(-1)[flat] = -probs.gather(-1, xs.view(-1)[flat].unsqueeze(-1)).squeeze(-1).double()
