"""Unmasking: the machinery of the parallel-decoding samplers (confidence, entropy_bounded) on masked processes.

A step proposes a token at every masked position of the current block, x_hat ~ softmax(log x_theta / temperature)
(argmax at 0), scores each proposal (`score`: column 0 ranks them, best first; later columns are what the commit
rule reads), and commits the k_b best of row b (`counts`); the others stay masked. Rows progress independently:
each row's k_b is read off its own candidates, so a row commits the same tokens alone or in a batch.

Two budgets (docs/samplers.md):
    fixed     `steps` reverse steps per block, k_b set in advance (LLaDA's equal split): NFE = steps.
    adaptive  the rule decides how many tokens each step commits (Fast-dLLM threshold / factor, EB), so the block
              runs until its last mask is committed; `steps` is not used. Each block gets as many loop iterations
              as its widest row has positions (each step commits at least one token per row with masks left), on
              the time grid of one token per step; a step where no row has anything left to do calls no denoiser,
              so NFE = what the rule needed (count it with NFECounter).
Positions outside the current block (semi-AR, `block_size`) are never candidates. The pass over the masked rows
runs in the prediction's dtype (float32 for a real model; Absorbing.x0_at_masks), a chunk of positions at a time,
and draws each proposal by inverse CDF with one uniform and float64 cumulative sums (no V-wide float64 Gumbel noise).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.process.base import Capability
from dlm.sample.base import Sampler
from dlm.sample.chunks import chunk_positions, gather_positions
from dlm.sample.context import SamplingContext
from dlm.sample.grids import TimeGrid
from dlm.sample.semi_ar import DecodeBlock, block_plan
from dlm.types import Prediction, StepOutput
from dlm.utils.categorical import inverse_cdf


@dataclass
class Unmasking(Sampler, ABC):
    """Base class: subclasses say how proposals are scored (`score`), how many each row commits (`counts`) and
    whether that number is decided by the rule (`adaptive`)."""

    needs = frozenset({Capability.ABSORBING})

    # --- what subclasses decide --------------------------------------------------------------------------
    def adaptive(self) -> bool:
        """True: each block runs until it has no mask (the rule sets NFE); False: `steps` per block."""
        return False

    def extra_steps(self) -> int:
        """Loop iterations added to every block after its masks are gone (token editing's post-fill steps)."""
        return 0

    @abstractmethod
    def score(self, ctx: SamplingContext, probs: Tensor, proposal: Tensor, rows: Tensor) -> Tensor:
        """untempered x_theta at a chunk of masked positions (n, N), their proposals (n,) and batch rows (n,) ->
        float64 (n, C): column 0 ranks the commits (higher first), the rest is for `counts`."""

    @abstractmethod
    def counts(self, ordered: Tensor, masked: Tensor, grid: TimeGrid, i: int) -> Tensor:
        """Tokens each row commits at step i: ordered (B, L, C), each row's scores sorted by column 0, best first
        (column 0 is -inf and the others 0 past the row's masks); masked (B,) masks left -> (B,) long (clamped to
        [1, masked] afterwards)."""

    def edit(self, ctx: SamplingContext, prediction: Prediction, xt: Tensor, xs: Tensor, masked: Tensor,
             i: int) -> Tensor:
        """xs with already decoded tokens changed after the step's commits (token editing); default: none.
        prediction: this step's, at x_t."""
        return xs

    def editing(self, ctx: SamplingContext, xt: Tensor, masked: Tensor, i: int) -> Tensor | None:
        """bool (B,): rows that want a denoiser call at step i without masks left (token editing), or None."""
        return None

    # --- the loop --------------------------------------------------------------------------------------------
    def blocks(self, editable: Tensor, steps: int) -> list[DecodeBlock]:
        """Fixed: `steps` split over the blocks (semi_ar.py). Adaptive: as many steps as the block's widest row
        has positions, `steps` unused. Both plus extra_steps()."""
        if self.adaptive():
            plan = [DecodeBlock(b.editable, max(int(b.editable.sum(-1).max()), 1))
                    for b in block_plan(editable, self.block_size, 0)]
        else:
            plan = block_plan(editable, self.block_size, steps)
        extra = self.extra_steps()
        return [DecodeBlock(b.editable, b.steps + extra) for b in plan] if extra else plan

    def grid(self, steps: int) -> TimeGrid:
        """The usual grid over the block's unmasking steps, then extra_steps() more at its end time: the steps that
        unmask see the same times with and without the extra ones."""
        extra = self.extra_steps()
        grid = TimeGrid.linear(steps - extra, self.eps)
        return TimeGrid(torch.cat([grid.times, grid.times[-1:].expand(extra)])) if extra else grid

    def step(self, ctx: SamplingContext, xt: Tensor, grid: TimeGrid, i: int) -> StepOutput:
        masked = xt == ctx.process.mask_id
        if ctx.editable is not None:
            masked &= ctx.editable
        left = masked.sum(-1)  # (B,)
        editing = self.editing(ctx, xt, masked, i)
        if not bool(left.any()) and (editing is None or not bool(editing.any())):
            return StepOutput(xs=xt)  # nothing to do: no denoiser call
        t = grid.t(i)
        prediction = self.predict(ctx, xt, t)
        xs = self._commit(ctx, prediction, xt, t, masked, left, grid, i) if bool(left.any()) else xt
        return StepOutput(xs=self.edit(ctx, prediction, xt, xs, masked, i), prediction=prediction)

    def _commit(self, ctx: SamplingContext, prediction: Prediction, xt: Tensor, t: float, masked: Tensor,
                left: Tensor, grid: TimeGrid, i: int) -> Tensor:
        """xt with the k_b best proposals of each row committed (the rest of its masks kept)."""
        proposal, scores = self._masked_proposals(ctx, prediction, xt, t, masked)
        table = torch.zeros((*xt.shape, scores.shape[1]), dtype=torch.float64, device=xt.device)  # (B, L, C)
        table[..., 0] = float("-inf")
        table[masked] = scores
        order = table[..., 0].argsort(dim=-1, descending=True, stable=True)
        k = self.counts(table.gather(1, order[..., None].expand_as(table)), left, grid, i)
        k = torch.minimum(k.clamp_min(1), left)
        rank = torch.empty_like(order).scatter_(-1, order, torch.arange(xt.shape[1], device=xt.device).expand_as(order))
        chosen = (rank < k.unsqueeze(-1)) & masked
        xs = xt.clone()
        xs[masked] = torch.where(chosen[masked], proposal, xt[masked])
        return xs

    def _masked_proposals(self, ctx: SamplingContext, prediction: Prediction, xt: Tensor, t: float,
                          masked: Tensor) -> tuple[Tensor, Tensor]:
        """Proposal (n,) and scores (n, C) at the masked positions (row-major), from x_theta computed only there in
        the prediction's dtype, a chunk of positions at a time (chunks.py; chunk_positions < 0: all at once). The
        noise is the same as one draw over all of them: the proposals' uniforms in order, then those of a
        noise-drawing score (draws_noise)."""
        flat = masked.flatten().nonzero()[:, 0]
        size = len(flat) if self.chunk_positions < 0 else chunk_positions(ctx.process.width, self.chunk_positions)
        proposals, scores = [], []
        for part in flat.split(max(size, 1)):
            probs = ctx.process.x0_at_masks(gather_positions(prediction, part))[:, 0]  # (n, N) untempered
            rows = part // xt.shape[1]
            proposals.append(self._propose(ctx, probs, rows))  # tempered / filtered
            if not self.draws_noise():
                scores.append(self.score(ctx, probs, proposals[-1], rows))
        proposal = torch.cat(proposals) if proposals else flat
        if self.draws_noise():
            nothing = torch.empty(len(proposal), 0, dtype=torch.float64, device=xt.device)
            return proposal, self.score(ctx, nothing, proposal, flat // xt.shape[1])
        return proposal, torch.cat(scores)

    def draws_noise(self) -> bool:
        """Whether `score` draws noise: then it runs once per step, after every proposal, with probs of width 0."""
        return False

    def _propose(self, ctx: SamplingContext, probs: Tensor, rows: Tensor) -> Tensor:
        """One draw per row of x_theta (n, N) after temperature / top-k / top-p (rows: their batch rows), by
        inverse CDF with one uniform each; temperature 0 takes the argmax without noise."""
        if self.temperature == 0:
            return probs.argmax(-1)
        law = self.reshape(probs.double()) if self.reshaped() else probs
        return inverse_cdf(law, ctx.uniform((len(law),), law.device, rows=rows))

