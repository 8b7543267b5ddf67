"""Confidence-ordered unmasking: MaskGIT (arXiv 2202.04200) / LLaDA low-confidence remasking (arXiv 2502.09992),
Fast-dLLM threshold and factor parallel decoding (arXiv 2505.22618) and LLaDA 2.1 token editing (arXiv 2602.08676).

Each step proposes a token at every masked position of the block, x_hat ~ softmax(log x_theta / temperature) (argmax
at 0), scores each proposal with the *untempered* x_theta, and commits the most confident ones; the rest stay masked
(the loop is unmasking.py's). Confidence (`remasking`):
    max_prob  x_theta(x_hat)            (LLaDA "low_confidence")
    margin    top-1 minus top-2 probability
    entropy   sum_v x_theta(v) log x_theta(v)   (negative entropy)
    random    U(0, 1)                   (LLaDA "random": with one token per step, exact ancestral order sampling)
Each rule is a registered class of REMASKING, built once from `remasking` when the sampler is.

How many per step (commit_counts.py), per row:
    default     a fixed quota, LLaDA's get_num_transfer_tokens: n masks over S steps give k_i = floor(n / S) +
                1[i < n mod S]; recomputed from the masks left, which gives the same k_i and empties the block by
                its last step. NFE = steps.
    threshold   every masked position of the block with confidence >= threshold, always at least the most
                confident one (Fast-dLLM Alg. 1; ties at the threshold kept). threshold > 1: one token per step;
                0: the whole block in one step.
    factor      the largest n whose n most confident c_(1) >= ... >= c_(n) satisfy (n + 1)(1 - c_(n)) <= factor,
                at least one: the condition of Fast-dLLM's Theorem 1 (factor 1). The reference code
                (get_transfer_index_dynamic) differs at the end of the ranking: when the first failing rank is the
                last candidate, or none fails, it commits every candidate (c = (0.99, 0.98, 0.2), f = 1 -> 3, here
                2; (0.9, 0.3) -> 2, here 1). This follows the theorem, not that loop-index artefact.
With a threshold or a factor the block runs until its last mask is committed and `steps` is not used (unmasking.py):
NFE is what the rule needs. threshold / factor compare the `remasking` score; Fast-dLLM's is max_prob.

Token editing (edit_threshold < 1, LLaDA 2.1's token-to-token editing). At every denoiser call, each token already
decoded in the current block (never a prompt token) is replaced by the model's argmax y at that position when
x_theta(y) > edit_threshold and y differs from it; after the block's masks are gone, up to `edit_steps` more calls
edit it until a call changes nothing in the row (rows stop independently). edit_threshold 1 (the default) never
edits and adds no step. What it reads: the denoiser's untempered prediction AT DECODED POSITIONS. LLaDA 2.1 trains
its model to predict there; a SUBS-parameterized model (our masked_elbo, MDLM) carries a decoded token over as a
point mass (x_theta(x_t) = 1; docs/masked.md), so with it no edit ever fires: editing needs a denoiser that
predicts every position (a model trained for it, returning log-probs everywhere). Re-predicting a decoded position
as if it were masked would cost a call per position; we do not do that.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from dlm.registry import REMASKING, SAMPLERS, ConfigError
from dlm.sample.chunks import chunk_positions, gather_positions
from dlm.sample.commit_counts import factor_counts, num_transfer_tokens, threshold_counts
from dlm.sample.context import SamplingContext
from dlm.sample.grids import TimeGrid
from dlm.sample.unmasking import Unmasking
from dlm.types import Prediction
from dlm.validation import check_finite

__all__ = ["Confidence", "num_transfer_tokens"]


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


@SAMPLERS.register("confidence")
@dataclass
class Confidence(Unmasking):
    """remasking: the confidence rule; threshold / factor: adaptive commit rules (at most one; None = the fixed
    quota); edit_threshold / edit_steps: token editing (module docstring)."""

    remasking: str = "max_prob"
    threshold: float | None = None
    factor: float | None = None
    edit_threshold: float = 1.0
    edit_steps: int = 16

    def __post_init__(self):
        super().__post_init__()
        self.rule: Remasking = REMASKING.build(self.remasking)
        if self.threshold is not None and self.factor is not None:
            raise ConfigError("confidence: give threshold or factor, not both")
        for name in ("threshold", "factor"):
            if getattr(self, name) is not None:
                check_finite(name, getattr(self, name))
        if self.factor is not None and self.factor < 0:
            raise ConfigError(f"confidence: factor must be >= 0, got {self.factor}")
        check_finite("edit_threshold", self.edit_threshold)
        if not 0 <= self.edit_threshold <= 1 or self.edit_steps < 0:
            raise ConfigError(f"confidence: need 0 <= edit_threshold <= 1 and edit_steps >= 0, got "
                              f"{self.edit_threshold}, {self.edit_steps}")

    def adaptive(self) -> bool:
        return self.threshold is not None or self.factor is not None

    def edits(self) -> bool:
        return self.edit_threshold < 1

    def extra_steps(self) -> int:
        return self.edit_steps if self.edits() else 0

    def draws_noise(self) -> bool:
        return self.rule.draws_noise

    def score(self, ctx, probs, proposal, rows):
        return self.rule(ctx, probs, proposal, rows).double().unsqueeze(-1)

    def counts(self, ordered: Tensor, masked: Tensor, grid: TimeGrid, i: int) -> Tensor:
        if self.threshold is not None:
            return threshold_counts(ordered[..., 0], self.threshold)
        if self.factor is not None:
            return factor_counts(ordered[..., 0], self.factor)
        return num_transfer_tokens(masked, max(grid.steps - self.extra_steps() - i, 1))[:, 0]

    # --- token editing ---------------------------------------------------------------------------------------
    def editing(self, ctx: SamplingContext, xt: Tensor, masked: Tensor, i: int) -> Tensor | None:
        if not self.edits():
            return None
        if i == 0:  # a new block
            ctx.state["token_edits"] = EditState.start(xt.shape[0], xt.device)
        state: EditState = ctx.state["token_edits"]
        filled = ~masked.any(-1)
        state.done |= filled & (state.calls >= self.edit_steps)
        return filled & ~state.done

    def edit(self, ctx: SamplingContext, prediction: Prediction, xt: Tensor, xs: Tensor, masked: Tensor,
             i: int) -> Tensor:
        if not self.edits():
            return xs
        state: EditState = ctx.state["token_edits"]
        decoded = (xt != ctx.process.mask_id) & ~state.done.unsqueeze(-1)
        if ctx.editable is not None:
            decoded &= ctx.editable
        xs = xs.clone()
        flat = decoded.flatten().nonzero()[:, 0]
        for part in flat.split(max(chunk_positions(ctx.process.width, self.chunk_positions), 1)):
            best = ctx.process.x0_at_masks(gather_positions(prediction, part))[:, 0].max(-1)  # untempered
            replace = (best.values > self.edit_threshold) & (best.indices != xt.view(-1)[part])
            xs.view(-1)[part[replace]] = best.indices[replace]
        filled = ~masked.any(-1) & ~state.done  # rows that spent this call on editing alone
        state.calls += filled.long()
        state.done |= filled & (xs == xt).all(-1)
        return xs


@dataclass
class EditState:
    """Per row of the current block: calls (B,) spent editing after its masks were gone; done (B,) bool."""

    calls: Tensor
    done: Tensor

    @classmethod
    def start(cls, batch: int, device: torch.device) -> EditState:
        return cls(torch.zeros(batch, dtype=torch.long, device=device),
                   torch.zeros(batch, dtype=torch.bool, device=device))
