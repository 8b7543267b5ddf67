"""Exact toys for the distillation tests: a table-lookup denoiser (student or inexact teacher) and oracle tables."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dlm.sample.exact import all_states, state_index


class TableStudent(nn.Module):
    """log x_S(. | x_t) looked up per (grid time, state): a free logit table (k, S, L, N) keyed by the nearest of the
    k start times of the student's grid; the mask column is -inf (SUBS), clean positions carry over."""

    def __init__(self, times: Tensor, width: int, length: int, mask_id: int, init: Tensor | None = None):
        super().__init__()
        self.times, self.width, self.mask_id = times[:-1].float(), width, mask_id
        shape = (len(self.times), width ** length, length, width)
        self.logits = nn.Parameter(init.clone().float() if init is not None else torch.zeros(shape))

    def forward(self, xt: Tensor, t: Tensor) -> Tensor:
        step = (self.times[None] - t.float()[:, None]).abs().argmin(-1)
        logits = self.logits[step, state_index(xt, self.width)]
        logits = logits.index_fill(-1, torch.tensor([self.mask_id]), float("-inf")).log_softmax(-1)
        clean = xt != self.mask_id
        carry = torch.nn.functional.one_hot(xt, self.width).float().log().clamp_min(-1e30)
        return torch.where(clean.unsqueeze(-1), carry, logits)


def oracle_table(oracle, times: Tensor, width: int, length: int) -> Tensor:
    """The oracle's log x0 at every state and student grid time: (k, S, L, N), to initialise a TableStudent from."""
    states = all_states(width, length)
    return torch.stack([oracle(states, torch.full((len(states),), float(t), dtype=torch.float64))
                        for t in times[:-1]]).clamp_min(-1e30)
