"""The fast top-p set (utils/categorical.py: nucleus_probs, from the sorted values alone) is the sort's exactly:
the same probabilities bit for bit, hence the same tokens from every sampler that reshapes x_theta."""

import pytest
import torch

from dlm.process import Absorbing
from dlm.sample import generate, get_sampler
from dlm.utils import categorical
from dlm.utils.categorical import nucleus_by_sort, nucleus_probs

V, L = 1200, 16


def rows_of_every_kind(seed: int) -> torch.Tensor:
    """(48, V) float64 laws: peaked, flat, and with many ties (integer logits), all of the same total."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(1, 12, 16, dtype=torch.float64)[:, None]
    peaked = torch.randn(16, V, generator=g, dtype=torch.float64) * scale
    tied = torch.randint(0, 4, (16, V), generator=g).double() * scale / 2
    coarse = torch.randint(0, 40, (16, V), generator=g).double() / 4
    return torch.softmax(torch.cat([peaked, tied, coarse]), -1)


@pytest.mark.parametrize("nucleus", ["reach", "strict"])
def test_nucleus_probs_equals_the_sort_definition(nucleus):
    for seed in range(3):
        probs = rows_of_every_kind(seed)
        for top_p in (0.05, 0.3, 0.5, 0.9, 0.95, 0.999):
            assert torch.equal(nucleus_probs(probs, top_p, nucleus), nucleus_by_sort(probs, top_p, nucleus))


class ContextDenoiser:
    """x_theta at each position: fixed logits of per-position sharpness plus a bonus for a token read off the
    previous position's state, so that early draws change later predictions. log-probs (B, L, V + 1)."""

    def __init__(self):
        g = torch.Generator().manual_seed(3)
        self.logits = torch.randn(L, V, generator=g, dtype=torch.float64) * torch.linspace(0.5, 9, L)[:, None]

    def __call__(self, xt, t, **kwargs):
        previous = torch.roll(xt, 1, dims=1) * 7 % V
        logits = self.logits.expand(xt.shape[0], -1, -1).scatter_add(-1, previous.unsqueeze(-1), torch.full(
            (*xt.shape, 1), 4.0, dtype=torch.float64))
        out = torch.full((*xt.shape, V + 1), float("-inf"), dtype=torch.float64)
        out[..., :V] = torch.log_softmax(logits, -1)
        return out.float()


SETTINGS = [
    ("confidence", {"top_p": 0.9}),
    ("confidence", {"top_p": 0.5, "temperature": 0.7}),
    ("confidence", {"top_p": 0.9, "top_k": 300, "nucleus": "strict"}),
    ("confidence", {"top_p": 0.95, "threshold": 0.3}),
    ("confidence", {"top_p": 0.8, "factor": 1.0}),
    ("confidence", {"top_p": 0.9, "block_size": 4, "remasking": "margin"}),
    ("entropy_bounded", {"top_p": 0.9, "gamma": 0.5}),
    ("ancestral", {"top_p": 0.9, "temperature": 1.3}),
]


@pytest.mark.parametrize("name,options", SETTINGS)
def test_samplers_draw_the_tokens_of_the_sort_definition(name, options, monkeypatch):
    def draw(seed):
        return generate(ContextDenoiser(), Absorbing(V), get_sampler(name, **options), steps=L, shape=(4, L),
                        generator=torch.Generator().manual_seed(seed))

    fast = [draw(seed) for seed in range(3)]
    monkeypatch.setattr(categorical, "nucleus_probs", nucleus_by_sort)
    assert all(torch.equal(x, draw(seed)) for seed, x in enumerate(fast))
