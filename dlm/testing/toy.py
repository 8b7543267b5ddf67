"""An exact denoiser for a toy distribution small enough to enumerate (all V^L sequences)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from dlm.process.base import Process
from dlm.types import Prediction


class ToyDistribution:
    """A random, non-factorized joint p(x0) over V^L sequences, with exact posteriors under a process."""

    def __init__(self, length: int = 3, vocab: int = 3, seed: int = 0, spread: float = 1.5):
        gen = torch.Generator().manual_seed(seed)
        self.length, self.vocab = length, vocab
        self.states = torch.tensor(list(itertools.product(range(vocab), repeat=length)))  # (S, L)
        self.probs = torch.softmax(spread * torch.randn(len(self.states), generator=gen, dtype=torch.float64), 0)

    def nll(self, x0: Tensor) -> Tensor:
        """Exact -log p(x0) for rows of x0 (B, L)."""
        return -torch.log(self.probs[self.index(x0)])

    def index(self, x: Tensor) -> Tensor:
        weights = self.vocab ** torch.arange(self.length - 1, -1, -1)
        return (x * weights).sum(-1)

    def _likelihoods(self, process: Process, xt: Tensor, t: Tensor) -> Tensor:
        """q(x_t^l | x0^l = state^l) for every state and position: (B, S, L), float64."""
        per_token = process.likelihood(xt, t)  # (B, L, N): q_t(x_t^l | x0^l = j)
        index = self.states.T.unsqueeze(0).expand(xt.shape[0], -1, -1)  # (B, L, S)
        return per_token.gather(-1, index).transpose(1, 2)

    def marginal_t(self, process: Process, xt: Tensor, t: Tensor) -> Tensor:
        """p_t(x_t) = sum_x0 p(x0) prod_l q(x_t^l | x0^l): (B,)."""
        return (self.probs[None] * self._likelihoods(process, xt, t).prod(-1)).sum(-1)

    def denoiser(self, process: Process):
        """(xt, t) -> exact log p(x0^l | x_t^{-l}) per position, (B, L, width): the ideal mean parameterization.

        The posterior of x0^l given the OTHER positions is what the masked and uniform ELBOs are minimized by
        (the model's reverse rates are ratios of alpha x_theta + (1 - alpha) pi); for absorbing it equals
        p(x0^l | x_t) at masked positions.
        """
        onehot = torch.nn.functional.one_hot(self.states, process.width).double()  # (S, L, N)

        def call(xt: Tensor, t: Tensor) -> Tensor:
            lik = self._likelihoods(process, xt, t)  # (B, S, L)
            out = torch.empty(xt.shape[0], self.length, process.width, dtype=torch.float64)
            for pos in range(self.length):
                others = torch.cat([lik[..., :pos], lik[..., pos + 1:]], dim=-1).prod(-1)
                post = self.probs[None] * others
                out[:, pos] = (post / post.sum(-1, keepdim=True)) @ onehot[:, pos]
            return torch.log(out.clamp_min(1e-300))

        return call

    def score_denoiser(self, process: Process):
        """(xt, t) -> Prediction(log_score): exact log p_t(x_t with position l set to y) / p_t(x_t)."""

        def call(xt: Tensor, t: Tensor) -> Prediction:
            B, L = xt.shape
            out = torch.zeros(B, L, process.width, dtype=torch.float64)
            log_base = torch.log(self.marginal_t(process, xt, t))
            for pos in range(L):
                for y in range(process.width):
                    moved = xt.clone()
                    moved[:, pos] = y
                    out[:, pos, y] = torch.log(self.marginal_t(process, moved, t).clamp_min(1e-300)) - log_base
            return Prediction(log_score=out)

        return call
