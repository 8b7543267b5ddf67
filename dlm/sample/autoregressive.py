"""Left-to-right sampling of the autoregressive baseline, through the same `generate` as the diffusion samplers.

The denoiser is causal: denoiser(x[:, :l], None).log_probs[:, l - 1] = log p(x^l | x^{<l}) (position l - 1 predicts
token l, objectives/autoregressive.py). Step i draws position l = i + 1 from it with temperature / top-k / top-p, so a
length-L sequence takes L - 1 NFE whatever `steps` says. The first token (BOS) must come from the prompt. Prompt
positions further right are copied when reached (teacher forcing), not conditioned on in advance.
With a denoiser that takes a cache (a DiffusionLM) the sampler attaches the standard append-only KV cache
(dlm/cache/append.py), so each step runs the backbone on the new token only: L forward tokens in all, instead of
re-reading the prefix at every step (L^2 / 2); kv_cache=False turns it off. The tokens are the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.cache.append import AppendCache
from dlm.process.base import Process
from dlm.registry import SAMPLERS, ConfigError
from dlm.sample.base import Sampler
from dlm.sample.context import SamplingContext
from dlm.sample.grids import TimeGrid
from dlm.sample.semi_ar import DecodeBlock
from dlm.types import StepOutput
from dlm.utils.categorical import filtered_probs, sample_categorical
from dlm.utils.deprecation import renamed


@SAMPLERS.register("autoregressive")
@dataclass
class AutoregressiveSampler(Sampler):
    kv_cache: bool = True

    needs = None  # no noise process: the causal model's own chain

    def default_cache(self, denoiser) -> AppendCache | None:
        return AppendCache() if self.kv_cache and getattr(denoiser, "supports_kv_cache", False) else None

    def check(self, process: Process | None) -> None:
        if process is not None:
            raise ConfigError(f"the autoregressive sampler takes process=None (the AR model has no noise process), "
                              f"got {type(process).__name__}")
        if self.block_size:
            raise ConfigError("block_size (semi-autoregressive decoding) needs a masked (absorbing) process")

    def initial(self, ctx: SamplingContext, free: Tensor) -> Tensor:
        return torch.zeros_like(free, dtype=torch.long)

    def blocks(self, editable: Tensor, steps: int) -> list[DecodeBlock]:
        if bool(editable[:, 0].any()):
            raise ConfigError("the autoregressive sampler needs the first token (BOS) in the prompt")
        return [DecodeBlock(editable, editable.shape[1] - 1)]

    def grid(self, steps: int) -> TimeGrid:
        return TimeGrid(torch.zeros(steps + 1, dtype=torch.float64))

    def step(self, ctx: SamplingContext, xt: Tensor, grid: TimeGrid, i: int) -> StepOutput:
        l = i + 1
        todo = ctx.editable[:, l]
        if not bool(todo.any()):
            return StepOutput(xs=xt)
        prediction = ctx.predict(xt[:, :l], None)
        log_probs = prediction.log_probs[todo, l - 1].double()  # (n, V)
        if self.temperature == 0:
            token = log_probs.argmax(-1)
        else:
            law = filtered_probs(log_probs, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                                 nucleus=self.nucleus)
            noise = ctx.uniform(tuple(law.shape), law.device, rows=todo.nonzero()[:, 0])
            token = sample_categorical(law, noise=noise)
        xs = xt.clone()
        xs[todo, l] = token
        return StepOutput(xs=xs, prediction=prediction)

    def finish(self, ctx: SamplingContext, x: Tensor, grid: TimeGrid) -> Tensor:
        return x


__getattr__ = renamed(__name__, {"Autoregressive": ("AutoregressiveSampler", AutoregressiveSampler)})
