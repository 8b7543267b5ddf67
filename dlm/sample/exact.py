"""The exact distribution a stage sampler produces on a toy small enough to enumerate (N^L states), no Monte Carlo.

Each stage of a step is a product over positions of the laws `stage_probs` returns, so the one-step kernel
K[x, x'] = sum over intermediate states of the stage products can be composed exactly in float64 (the method of
docs/samplers.md). Zero-probability branches are pruned, which keeps two-stage steps cheap.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from dlm.denoiser import Denoiser
from dlm.process.base import Process
from dlm.sample.base import Sampler
from dlm.sample.context import SamplingContext


def all_states(width: int, length: int) -> Tensor:
    """Every sequence in {0..width-1}^length, (width^length, length), in lexicographic order."""
    return torch.tensor(list(itertools.product(range(width), repeat=length)), dtype=torch.long)


def state_index(x: Tensor, width: int) -> Tensor:
    """Row of all_states(width, L) holding each sequence of x (..., L)."""
    weights = width ** torch.arange(x.shape[-1] - 1, -1, -1, device=x.device)
    return (x * weights).sum(-1)


def total_variation(p: Tensor, q: Tensor) -> float:
    return 0.5 * float((p.double() - q.double()).abs().sum())


def exact_law(sampler: Sampler, denoiser: Denoiser, process: Process, *, steps: int, length: int,
              initial: Tensor | None = None, finish: bool = True) -> Tensor:
    """Law over all_states(process.width, length) after `steps` steps of `sampler` (and its noise removal when
    finish). initial: law at t = 1 (default: the prior pi^L). -> float64 (width^length,)."""
    states = all_states(process.width, length)
    if initial is None:
        pi = process.limit(torch.empty(0, dtype=torch.float64))
        initial = pi[states].prod(-1)
    law = initial.double()
    grid = sampler.grid(steps)
    for i in range(grid.steps):
        law = law @ step_kernel(sampler, denoiser, process, states, grid.t(i), grid.s(i))
    if finish:
        law = law @ _final_kernel(sampler, denoiser, process, states, grid.end)
    return law


def _transition(probs: Tensor, states: Tensor) -> Tensor:
    """Product law: probs (H, L, N) -> (H, S) with entry prod_l probs[h, l, states[s, l]]."""
    probs = probs.double().clamp_min(0)
    probs = probs / probs.sum(-1, keepdim=True)
    return torch.stack([probs[:, l, states[:, l]] for l in range(states.shape[1])], -1).prod(-1)


def step_kernel(sampler: Sampler, denoiser: Denoiser, process: Process, states: Tensor, t: float,
                s: float) -> Tensor:
    """K[x, x'] of one step t -> s over states = all_states(width, L), composing the stages over every branch of
    intermediate states: law_s = law_t @ K."""
    ctx = SamplingContext(denoiser, process)
    hist, memo = [states], {}
    weight = torch.ones(len(states), dtype=torch.float64)
    origin = torch.arange(len(states))
    for _ in range(sampler.stages):
        moves = _transition(sampler.stage_probs(ctx, hist, memo, t, s), states)
        rows, cols = (moves > 0).nonzero(as_tuple=True)
        weight, origin = weight[rows] * moves[rows, cols], origin[rows]
        hist = [h[rows] for h in hist] + [states[cols]]
        memo = {key: value[rows] for key, value in memo.items()}
    kernel = torch.zeros(len(states), len(states), dtype=torch.float64)
    return kernel.index_put_((origin, state_index(hist[-1], process.width)), weight, accumulate=True)


def _final_kernel(sampler: Sampler, denoiser: Denoiser, process: Process, states: Tensor, t: float) -> Tensor:
    ctx = SamplingContext(denoiser, process)
    return _transition(sampler.final_rule(sampler.final_probs(ctx, states, t)), states)
