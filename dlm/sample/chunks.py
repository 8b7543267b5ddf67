"""Position chunks: a stage's laws computed and drawn a few positions at a time, only where they can move.

A stage law is a product over positions (base.py), so the (B, L, N) float64 law never has to exist: the network
runs once on the full state, and the law math and the Gumbel-max draw run on chunks of positions, each seen as a
batch of (n, 1) sequences. Only the positions that can change are visited (masked ones under absorbing: a clean
token stays put under every reverse step, `Process.movable`); the others keep their token, as their point-mass law
would give without consuming noise. Chunks follow the row-major order of the positions, so the uniforms drawn are
the same, in the same order, as one draw over all uncertain positions: samples are identical (a NoiseTape records
one entry per chunk). At V = 50257 a chunk's float64 law is CHUNK_BYTES, so a stage's extra memory is a few
chunks plus the float32 prediction, instead of several (B, L, N) float64 tensors. Under absorbing the
draw is fused.py's instead, which reuses PositionChunk for the few positions that need their law.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from dlm.registry import ConfigError
from dlm.sample.context import SamplingContext
from dlm.types import Prediction

CHUNK_BYTES = 1 << 22  # float64 bytes of one chunk's law: cache-sized (at V = 50257, 2x faster than 16 MB)

Law = Callable[[SamplingContext, list[Tensor], dict], Tensor]
"""(ctx, hist, memo) -> the law (n, L', N) of hist[-1]'s next value; Sampler.stage_probs with t and s bound."""


def chunk_positions(width: int, requested: int = 0) -> int:
    """Positions per chunk: `requested`, or as many as keep an (n, width) float64 law within CHUNK_BYTES."""
    return requested if requested > 0 else max(1, CHUNK_BYTES // (8 * width))


def gather_positions(prediction: Prediction, flat: Tensor) -> Prediction:
    """The prediction (B, L, N) at flat position indices (n,) -> (n, 1, N), each position its own sequence."""
    def pick(x: Tensor | None) -> Tensor | None:
        return None if x is None else x.flatten(0, 1).index_select(0, flat).unsqueeze(1)  # row copies: fast
    return Prediction(log_probs=pick(prediction.log_probs), log_score=pick(prediction.log_score))


class PositionChunk(SamplingContext):
    """The context a law sees for one chunk: its states are (n, 1), its predictions the full-state network output
    (computed once per state and time, shared by all chunks) at its positions, and its noise the full context's,
    attributed to the batch rows the positions belong to."""

    def __init__(self, ctx: SamplingContext, predict: Callable, full: list[Tensor], flat: Tensor,
                 predictions: dict):
        super().__init__(ctx.denoiser, ctx.process)
        self.full_ctx, self.full, self.flat, self.predictions, self._predict = ctx, full, flat, predictions, predict
        self.hist = [h.flatten()[flat].unsqueeze(1) for h in full]  # (n, 1) each
        self.row_of = flat // full[0].shape[1]

    def predict(self, xt: Tensor, t: float | None, rows: Tensor | None = None) -> Prediction:
        index = next((k for k, h in enumerate(self.hist) if h is xt), None)
        if index is None or rows is not None:
            raise ConfigError("a chunked stage law asked the denoiser about a state that is not one of the step's; "
                              "set chunk_positions=-1 on this sampler to compute whole laws")
        return gather_positions(self.full_prediction(index, t), self.flat)

    def full_prediction(self, index: int, t: float | None) -> Prediction:
        """The network output (B, L, N) for the step's state hist[index] at t, computed once and shared."""
        key = (index, t)
        if key not in self.predictions:
            self.predictions[key] = self._predict(self.full_ctx, self.full[index], t)
        return self.predictions[key]

    def uniform(self, shape: tuple[int, ...], device: torch.device | str | None = None,
                rows: Tensor | None = None) -> Tensor:
        return self.full_ctx.uniform(shape, device, rows=None if rows is None else self.row_of[rows])


def chunk_laws(ctx: SamplingContext, predict: Callable, hist: list[Tensor], memos: dict, law: Law,
               active: Tensor, size: int, predictions: dict | None = None) -> Iterator[tuple[PositionChunk, Tensor]]:
    """Yield (chunk, its law (n, 1, N)) over the active positions (bool (B, L)), `size` at a time, in row-major
    order. There is always at least one (possibly empty) chunk, so the denoiser runs exactly as often as it would
    without chunking. memos[k] is chunk k's memo, kept across the stages of one step; predictions: network outputs
    already computed for this stage (mixture.py's fallback), keyed (hist index, t)."""
    flat = active.flatten().nonzero()[:, 0]
    predictions = {} if predictions is None else predictions
    for k, start in enumerate(range(0, max(len(flat), 1), size)):
        chunk = PositionChunk(ctx, predict, hist, flat[start:start + size], predictions)
        yield chunk, law(chunk, chunk.hist, memos.setdefault(k, {}))


def chunked_draw(ctx: SamplingContext, predict: Callable, hist: list[Tensor], memos: dict, law: Law,
                 active: Tensor, size: int, predictions: dict | None = None) -> Tensor:
    """hist[-1] (B, L) with every active position redrawn from its law, chunk by chunk (module docstring)."""
    out = hist[-1].clone()
    for chunk, probs in chunk_laws(ctx, predict, hist, memos, law, active, size, predictions):
        out.view(-1)[chunk.flat] = chunk.draw(probs, chunk.hist[-1]).squeeze(1)
    return out
