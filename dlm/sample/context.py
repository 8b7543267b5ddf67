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
from dlm.sample.noise import NoiseTape
from dlm.types import Prediction
from dlm.utils.categorical import sample_categorical, uniform_noise


@dataclass
class SamplingContext:
    """denoiser: (xt, t) -> Prediction | Tensor; cache is passed through to it when not None.
    editable: bool (B, L), the positions the current block may change (None = all); prompts are never editable.
    state: per-run scratch a sampler may keep between steps (ancestral_cache's stored prediction).
    """

    denoiser: Denoiser
    process: Process | None
    generator: torch.Generator | None = None
    noise: NoiseTape | None = None
    cache: Any = None
    editable: Tensor | None = None
    state: dict = field(default_factory=dict)

    def predict(self, xt: Tensor, t: float | None) -> Prediction:
        """One denoiser evaluation at model time t (float32 (B,), or None for time-free AR models)."""
        time = None if t is None else torch.full((xt.shape[0],), t, dtype=torch.float32, device=xt.device)
        output = self.denoiser(xt, time) if self.cache is None else self.denoiser(xt, time, cache=self.cache)
        return as_prediction(output)

    def uniform(self, shape: tuple[int, ...], device: torch.device | str | None = None) -> Tensor:
        """U(0, 1) float64 noise of `shape`, through the tape when one is given."""
        if self.noise is not None:
            return self.noise.uniform(shape, generator=self.generator, device=device)
        return uniform_noise(tuple(shape), generator=self.generator, device=device)

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
            rows = probs[uncertain]
            out = out.clone()
            out[uncertain] = sample_categorical(rows, noise=self.uniform(tuple(rows.shape), rows.device))
        return out
