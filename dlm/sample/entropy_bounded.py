"""Entropy-bounded (EB) sampler: commit as many tokens per step as their summed entropy allows (Ben-Hamu, Gat, Severo,
Nolte, Karrer, arXiv 2505.24857, Eq. 8; docs/samplers.md).

Each step (unmasking.py's loop) proposes a token at every masked position of the block from p = softmax(log x_theta /
temperature) (top-k / top-p applied), ranks the positions by an error proxy e, lowest first,
    entropy     e = H(p) = -sum_v p_v log p_v (nats)      (the default)
    confidence  e = -max_v p_v
    margin      e = -(p_(1) - p_(2)),
and commits the largest prefix of that ranking whose entropies h_1, h_2, ... satisfy S_k - M_k <= gamma, with S_k the
sum and M_k the max of the first k: S_k - M_k bounds the mutual information among the k tokens, the error of
drawing them independently. At least one token per step while a mask is left; the block runs until it has none,
so NFE is what the bound needs and `steps` is not used. gamma = 0 commits one token per step unless several have
zero entropy (one-hot rows go all at once); a larger gamma never commits fewer.

The entropy and the proxy are those of p, the distribution the tokens are drawn from; at temperature 0 (greedy)
that would be a point mass, so there they are read off the untempered x_theta instead.
With gamma = 0, the entropy proxy and temperature 1, an exact denoiser gives exact samples: one position at a
time, drawn from its exact conditional, in an order that depends only on the tokens already revealed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.registry import SAMPLERS, ConfigError
from dlm.sample.commit_counts import entropy_bound_counts
from dlm.sample.grids import TimeGrid
from dlm.sample.unmasking import Unmasking
from dlm.validation import check_finite

PROXIES = ("entropy", "confidence", "margin")


@SAMPLERS.register("entropy_bounded")
@dataclass
class EntropyBounded(Unmasking):
    """gamma: the bound on S_k - M_k (nats); proxy: the error proxy that ranks the positions."""

    gamma: float = 0.1
    proxy: str = "entropy"

    def __post_init__(self):
        super().__post_init__()
        check_finite("gamma", self.gamma)
        if self.gamma < 0 or self.proxy not in PROXIES:
            raise ConfigError(f"entropy_bounded: need gamma >= 0 and proxy one of {PROXIES}, got {self.gamma}, "
                              f"'{self.proxy}'")

    def adaptive(self) -> bool:
        return True

    def score(self, ctx, probs, proposal, rows) -> Tensor:
        """-> (n, 2): column 0 = -e (higher commits first), column 1 = the entropy of p."""
        p = self.reshape(probs.double()) if self.temperature > 0 else probs.double()
        entropy = -torch.special.xlogy(p, p).sum(-1)
        if self.proxy == "entropy":
            rank = -entropy
        elif self.proxy == "confidence":
            rank = p.max(-1).values
        else:
            top = p.topk(2, dim=-1).values
            rank = top[:, 0] - top[:, 1]
        return torch.stack([rank, entropy], -1)

    def counts(self, ordered: Tensor, masked: Tensor, grid: TimeGrid, i: int) -> Tensor:
        return entropy_bound_counts(ordered[..., 1], self.gamma)
