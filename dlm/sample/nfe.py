"""NFECounter: a denoiser wrapper that counts the evaluations (NFE) a sampler spends."""

from __future__ import annotations

from torch import Tensor

from dlm.denoiser import Denoiser
from dlm.types import Prediction


class NFECounter:
    """Wraps a denoiser and counts its evaluations: `calls` (forward passes) and `rows` (sequences evaluated)."""

    def __init__(self, denoiser: Denoiser):
        self.denoiser = denoiser
        self.supports_kv_cache = getattr(denoiser, "supports_kv_cache", False)  # the wrapped model's, for samplers
        self.calls = 0
        self.rows = 0

    def __call__(self, xt: Tensor, t: Tensor | None, **kwargs) -> Prediction | Tensor:
        self.calls += 1
        self.rows += xt.shape[0]
        return self.denoiser(xt, t, **kwargs)
