"""Absorbing (masked) diffusion: each token jumps to the mask id m with probability 1 - alpha_t and stays there.

MDLM (arXiv 2406.07524) §3; MD4 (arXiv 2406.04329); SEDD's absorbing graph (arXiv 2310.16834). pi = onehot(m).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.process.base import Process
from dlm.process.schedules import Schedule
from dlm.registry import PROCESSES, ConfigError


@PROCESSES.register("absorbing")
class Absorbing(Process):
    """mask_id defaults to vocab_size (appended, model width vocab_size + 1); a tokenizer's own mask id
    inside the vocabulary (BERT's [MASK]) keeps the width at vocab_size."""

    def __init__(self, vocab_size: int, schedule: Schedule | None = None, mask_id: int | None = None):
        super().__init__(vocab_size, schedule)
        self.mask_id = vocab_size if mask_id is None else mask_id
        if not 0 <= self.mask_id <= vocab_size:
            raise ConfigError(f"mask_id {self.mask_id} must lie in [0, vocab_size={vocab_size}]")
        self.width = vocab_size + 1 if self.mask_id == vocab_size else vocab_size

    def limit(self, like: Tensor) -> Tensor:
        pi = torch.zeros(self.width, dtype=like.dtype, device=like.device)
        pi[self.mask_id] = 1
        return pi

    def clean_mask(self, like: Tensor) -> Tensor:
        """Every category but the mask id: x0 is never the mask."""
        keep = torch.ones(self.width, dtype=torch.bool, device=like.device)
        keep[self.mask_id] = False
        return keep

    def prior(self, shape, *, generator=None, device=None) -> Tensor:
        return torch.full(tuple(shape), self.mask_id, dtype=torch.long, device=device)

    def check_tokens(self, x0: Tensor) -> None:
        super().check_tokens(x0)
        if self.mask_id < self.vocab_size and bool((x0 == self.mask_id).any()):
            raise ConfigError(f"clean data contains the mask id {self.mask_id}; it may only appear in x_t")
