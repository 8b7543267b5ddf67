"""Confidence-ordered unmasking: MaskGIT (arXiv 2202.04200) / LLaDA low-confidence remasking (arXiv 2502.09992).

Each step proposes a token at every masked position, x_hat ~ softmax(log x_theta / temperature) (argmax at 0), scores
each proposal with the *untempered* x_theta, and commits the k_i most confident ones; the rest stay masked. The
quota follows LLaDA's get_num_transfer_tokens: n masks over S steps give k_i = floor(n / S) + 1[i < n mod S], an
equal expected number per step; it is recomputed from the masks left, which gives the same k_i and always empties the
block by its last step. Confidence:
    max_prob  x_theta(x_hat)            (LLaDA "low_confidence")
    margin    top-1 minus top-2 probability
    entropy   sum_v x_theta(v) log x_theta(v)   (negative entropy)
    random    U(0, 1)                   (LLaDA "random": with one token per step, exact ancestral order sampling)
Each rule is a registered class of REMASKING, built once from `remasking` when the sampler is. Positions are
coupled through the top-k, so this sampler overrides `step`; masked processes only. The pass over the masked rows
runs in the prediction's dtype (float32 for a real model; Absorbing.x0_at_masks) and draws each proposal by inverse
CDF with one uniform and float64 cumulative sums (no V-wide float64 Gumbel noise).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from dlm.process.base import Capability
from dlm.registry import REMASKING, SAMPLERS
from dlm.sample.base import Sampler
from dlm.sample.chunks import chunk_positions, gather_positions
from dlm.sample.context import SamplingContext
from dlm.sample.grids import TimeGrid
from dlm.types import Prediction, StepOutput
from dlm.utils.categorical import inverse_cdf


class Remasking(ABC):
    """A confidence rule: untempered x_theta at the masked positions probs (n, N), the proposals (n,) and their
    batch rows (n,) -> confidence (n,), higher commits first. A rule that draws noise (draws_noise) is called once
    per step on all proposals, after the proposals' noise, with probs of width 0; the others once per chunk."""

    draws_noise: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, ctx: SamplingContext, probs: Tensor, proposal: Tensor, rows: Tensor) -> Tensor: ...


@REMASKING.register("max_prob")
class MaxProb(Remasking):
    def __call__(self, ctx, probs, proposal, rows):
        return probs.gather(-1, proposal.unsqueeze(-1)).squeeze(-1)


@REMASKING.register("margin")
class Margin(Remasking):
    def __call__(self, ctx, probs, proposal, rows):
        top = probs.topk(2, dim=-1).values
        return top[:, 0] - top[:, 1]


@REMASKING.register("entropy")
class NegativeEntropy(Remasking):
    def __call__(self, ctx, probs, proposal, rows):
        return torch.special.xlogy(probs, probs).sum(-1)


@REMASKING.register("random")
class RandomOrder(Remasking):
    draws_noise = True

    def __call__(self, ctx, probs, proposal, rows):
        return ctx.uniform((len(proposal),), probs.device, rows=rows)


def num_transfer_tokens(masked: Tensor, steps: int) -> Tensor:
    """LLaDA get_num_transfer_tokens: mask counts (B,) -> tokens to commit per step (B, steps); rows sum to masked."""
    base, extra = masked // steps, masked % steps
    return base.unsqueeze(-1) + (torch.arange(steps, device=masked.device) < extra.unsqueeze(-1)).long()


@SAMPLERS.register("confidence")
@dataclass
class Confidence(Sampler):
    remasking: str = "max_prob"

    needs = frozenset({Capability.ABSORBING})

    def __post_init__(self):
        super().__post_init__()
        self.rule: Remasking = REMASKING.build(self.remasking)

    def step(self, ctx: SamplingContext, xt: Tensor, grid: TimeGrid, i: int) -> StepOutput:
        masked = xt == ctx.process.mask_id
        if ctx.editable is not None:
            masked &= ctx.editable
        quota = num_transfer_tokens(masked.sum(-1), grid.steps - i)[:, 0]
        if not bool((quota > 0).any()):
            return StepOutput(xs=xt)
        t = grid.t(i)
        prediction = self.predict(ctx, xt, t)
        proposal, scores = self._masked_proposals(ctx, prediction, xt, t, masked)
        confidence = torch.full(xt.shape, float("-inf"), dtype=torch.float64, device=xt.device)
        confidence[masked] = scores
        order = confidence.argsort(dim=-1, descending=True, stable=True)
        rank = torch.empty_like(order).scatter_(-1, order, torch.arange(xt.shape[1], device=xt.device).expand_as(order))
        chosen = (rank < quota.unsqueeze(-1)) & masked
        xs = xt.clone()
        xs[masked] = torch.where(chosen[masked], proposal, xt[masked])
        return StepOutput(xs=xs, prediction=prediction)

    def _masked_proposals(self, ctx: SamplingContext, prediction: Prediction, xt: Tensor, t: float,
                          masked: Tensor) -> tuple[Tensor, Tensor]:
        """Proposal and confidence (n,) at the masked positions (row-major), from x_theta computed only there in the
        prediction's dtype, a chunk of positions at a time (chunks.py; chunk_positions < 0: all at once). The noise
        is the same as one draw over all of them: the proposals' uniforms in order, then those of a noise-drawing
        rule."""
        flat = masked.flatten().nonzero()[:, 0]
        size = len(flat) if self.chunk_positions < 0 else chunk_positions(ctx.process.width, self.chunk_positions)
        proposals, scores = [], []
        for part in flat.split(max(size, 1)):
            probs = ctx.process.x0_at_masks(gather_positions(prediction, part))[:, 0]  # (n, N) untempered
            rows = part // xt.shape[1]
            proposals.append(self._propose(ctx, probs, rows))  # tempered / filtered
            if not self.rule.draws_noise:
                scores.append(self.rule(ctx, probs, proposals[-1], rows).double())
        proposal = torch.cat(proposals) if proposals else flat
        if self.rule.draws_noise:
            nothing = torch.empty(len(proposal), 0, dtype=torch.float64, device=xt.device)
            return proposal, self.rule(ctx, nothing, proposal, flat // xt.shape[1])
        return proposal, torch.cat(scores) if scores else torch.zeros(0, dtype=torch.float64, device=xt.device)

    def _propose(self, ctx: SamplingContext, probs: Tensor, rows: Tensor) -> Tensor:
        """One draw per row of x_theta (n, N) after temperature / top-k / top-p (rows: their batch rows), by
        inverse CDF with one uniform each; temperature 0 takes the argmax without noise."""
        if self.temperature == 0:
            return probs.argmax(-1)
        law = self.reshape(probs.double()) if self.reshaped() else probs
        return inverse_cdf(law, ctx.uniform((len(law),), law.device, rows=rows))
