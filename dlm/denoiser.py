"""The Denoiser contract: any callable (xt: LongTensor[B, L], t: Tensor[B]) -> Prediction | Tensor.

A bare Tensor means log-probabilities over x0, shape (B, L, model width) (the mean parameterization);
a Prediction may carry SEDD's log concrete score instead.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from dlm.types import Prediction

Denoiser = Callable[..., "Prediction | Tensor"]


def as_prediction(output: Prediction | Tensor) -> Prediction:
    """A bare tensor from a denoiser means log-probabilities over x0."""
    return output if isinstance(output, Prediction) else Prediction(log_probs=output)
