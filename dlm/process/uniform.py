"""Uniform-state diffusion: with probability 1 - alpha_t a token is redrawn uniformly from all N tokens.

D3PM uniform (arXiv 2107.03006), UDLM (arXiv 2412.10193), Duo (arXiv 2506.10892), SEDD's uniform graph.
q(x_t | x_0) = alpha_t onehot(x_0) + (1 - alpha_t)/N; pi = uniform; width N = vocab_size (no mask token).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.process.base import Process
from dlm.process.schedules import Schedule
from dlm.registry import PROCESSES


@PROCESSES.register("uniform")
class Uniform(Process):
    def __init__(self, vocab_size: int, schedule: Schedule | None = None):
        super().__init__(vocab_size, schedule)
        self.width = vocab_size

    def limit(self, like: Tensor) -> Tensor:
        return torch.full((self.width,), 1.0 / self.width, dtype=like.dtype, device=like.device)

    def prior(self, shape, *, generator=None, device=None) -> Tensor:
        return torch.randint(0, self.width, tuple(shape), generator=generator, device=device)
