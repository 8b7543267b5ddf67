"""How SDTT reads a model's clean-token law x_theta on a noisy batch
(docs/distillation.md#sdtt-on-block-diffusion-models). SDTT's target (sdtt.py) is the same for both families it
distils; what differs is what 'time' is and how the model is called on x_t:

    masked (masked_elbo, radd)    t: one time per row (B,)      x_theta(. | x_t): one call on x_t
    block diffusion (BD3LM)       t: one time per block (B, L)  x_theta(. | x_t^k, x^{<k}) of every block k: ONE
                                  two-stream forward on x_t ⊕ x_0 (objectives/block_diffusion.py), x_0 the clean row

Both draw the student's start times the same way: the B x K (row, block) pairs (K = 1 for a masked model) take grid
indices stratified over the student's k steps, so a block model with block_size = L draws what a masked model does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.denoiser import Denoiser, as_prediction
from dlm.objectives.block_diffusion import BlockDiffusion
from dlm.objectives.masked_elbo import subs
from dlm.process.absorbing import Absorbing
from dlm.types import Prediction


def stratified_grid_steps(steps: int, pairs: int, generator: torch.Generator | None,
                          device: torch.device) -> Tensor:
    """(pairs,) long grid indices i in [0, steps): one random offset, then consecutive pairs take consecutive
    steps, so every step of the student's grid is drawn equally often."""
    offset = torch.randint(steps, (1,), generator=generator, device=device)
    return (offset + torch.arange(pairs, device=device)) % steps


@dataclass(frozen=True)
class MaskedReader:
    """A masked model: one time per row, x_theta(. | x_t) = model(x_t, t)."""

    process: Absorbing

    def blocks(self, length: int) -> int:
        return 1

    def per_token(self, block_times: Tensor) -> Tensor:
        """(B, 1) -> the model's time (B,)."""
        return block_times[:, 0]

    def predict(self, model: Denoiser, xt: Tensor, t: Tensor, x0: Tensor | None = None) -> Prediction:
        """x_theta(. | x_t) (B, L, N) at times t (B,); x0 is unused (a masked model reads no clean context)."""
        return as_prediction(model(xt, t.float()))


@dataclass(frozen=True)
class BlockReader:
    """A block-diffusion model: one time per block, every block's x_theta(. | x_t^k, x_0^{<k}) from one two-stream
    forward given the clean row x_0."""

    objective: BlockDiffusion

    @property
    def process(self) -> Absorbing:
        return self.objective.process

    def blocks(self, length: int) -> int:
        return self.objective.n_blocks(length)

    def per_token(self, block_times: Tensor) -> Tensor:
        """(B, K) -> the model's time per token (B, L): each block's time repeated over its tokens."""
        return block_times.repeat_interleave(self.objective.block_size, dim=1)

    def predict(self, model: Denoiser, xt: Tensor, t: Tensor, x0: Tensor | None = None) -> Prediction:
        """SUBS x_theta (B, L, N) of every block given its noisy tokens x_t^k and the clean blocks x0^{<k}, t (B, L).
        model: has .logits (DiffusionLM)."""
        if x0 is None:
            raise ValueError("a block model's x_theta reads the clean rows x0 (the two-stream input)")
        logits = self.objective.two_stream_logits(model.logits, xt, x0, t.float())
        return Prediction(log_probs=subs(logits, xt, self.objective.mask_id))


Reader = MaskedReader | BlockReader


def reader_of(model) -> Reader:
    """The reader of a DiffusionLM: BlockReader for a block-diffusion objective, MaskedReader otherwise."""
    if isinstance(model.objective, BlockDiffusion):
        return BlockReader(model.objective)
    return MaskedReader(model.process)
