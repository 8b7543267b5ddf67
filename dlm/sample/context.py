"""The state of one `generate` call that samplers share: the denoiser, the process, the noise and what may change.

Samplers are configured objects without per-run state; everything that lives for one run is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from dlm.denoiser import Denoiser, as_prediction
from dlm.process.base import Process
from dlm.sample.noise import Generators, NoiseTape, row_uniform
from dlm.types import Prediction
from dlm.utils.categorical import sample_categorical


@dataclass
class SamplingContext:
    """denoiser: (xt, t) -> Prediction | Tensor; cache and attention_mask are passed through to it when not None.
    generator: one torch.Generator, or one per batch row (noise.row_uniform).
    attention_mask: bool (B, L), False at padding (right-padded rows of different lengths).
    editable: bool (B, L), the positions the current block may change (None = all); prompts are never editable.
    state: per-run scratch a sampler may keep between steps (ancestral_cache's stored prediction).
    """

    denoiser: Denoiser
    process: Process | None
    generator: Generators = None
    noise: NoiseTape | None = None
    cache: Any = None
    attention_mask: Tensor | None = None
    editable: Tensor | None = None
    state: dict = field(default_factory=dict)

    def predict(self, xt: Tensor, t: float | None, rows: Tensor | None = None) -> Prediction:
        """One denoiser evaluation at model time t (a float, or one per row (B,); None for time-free AR models).
        xt may be a prefix of the columns (AR) or, with rows (bool (B,)), a subset of the rows."""
        time = None if t is None else torch.as_tensor(t, dtype=torch.float32, device=xt.device).expand(xt.shape[0])
        kwargs = {} if self.cache is None else {"cache": self.cache}
        if self.attention_mask is not None:
            mask = self.attention_mask if rows is None else self.attention_mask[rows]
            kwargs["attention_mask"] = mask[:, :xt.shape[1]]
        return as_prediction(self.denoiser(xt, time, **kwargs))

    def uniform(self, shape: tuple[int, ...], device: torch.device | str | None = None,
                rows: Tensor | None = None) -> Tensor:
        """U(0, 1) float64 noise of `shape`, through the tape when one is given. rows (shape[0],): the batch row
        of each leading entry, which per-row generators need."""
        if self.noise is not None:
            return self.noise.uniform(shape, generator=self.generator, device=device, rows=rows)
        return row_uniform(tuple(shape), generator=self.generator, device=device, rows=rows)

    def draw(self, probs: Tensor, current: Tensor) -> Tensor:
        """Sample every editable position from its row of probs (B, L, N) (unnormalized, negatives clipped).

        Positions outside `editable` keep `current`; rows that are a point mass take it without consuming noise,
        so the noise spent (and recorded) is only (n_uncertain, N).
        """
        probs = probs.double().clamp_min(0)  # Gumbel-max needs no normalization: one (B, L, N) copy only
        top = probs.max(-1)
        uncertain = top.values < probs.sum(-1)
        out = top.indices
        if self.editable is not None:
            uncertain &= self.editable
            out = torch.where(self.editable, out, current)
        if bool(uncertain.any()):
            laws = probs[uncertain]
            out = out.clone()
            noise = self.uniform(tuple(laws.shape), laws.device, rows=uncertain.nonzero()[:, 0])
            out[uncertain] = sample_categorical(laws, noise=noise)
        return out
