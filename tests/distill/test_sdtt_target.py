"""SDTT's target on an exact toy: its expectation over the teacher's intermediate draw is the teacher's two-step law
of each position, computed in closed form by composing the ancestral kernel over every state."""

from __future__ import annotations

import torch

from dlm.process import Absorbing, LogLinear
from dlm.sample.ancestral import Ancestral
from dlm.sample.exact import all_states, state_index, step_kernel
from dlm.testing import Tabulated, ToyDistribution
from dlm.train.distill.readers import MaskedReader
from dlm.train.distill.sdtt import teacher_x0, two_step_target


def test_expected_target_is_the_teachers_two_step_law():
    toy, process = ToyDistribution(length=3, vocab=3, seed=2), Absorbing(3, LogLinear(eps=1e-3))
    oracle = Tabulated(toy, process)
    states = all_states(process.width, 3)
    m = process.mask_id
    t, u, s = 0.9, 0.6, 0.3
    for start in ([m, m, m], [m, 1, m], [2, m, m]):
        xt = torch.tensor([start])
        # closed form: the row of x_t in K(t -> u) K(u -> s), marginalized per position
        kernel_tu = step_kernel(Ancestral(), oracle, process, states, t, u)
        two_step = kernel_tu @ step_kernel(Ancestral(), oracle, process, states, u, s)
        law = two_step[state_index(xt, process.width)][0]  # (S,)
        # the estimator's expectation: every x_u weighted by the teacher's first step
        weights = kernel_tu[state_index(xt, process.width)][0]
        reached = weights > 0
        xu, weights = states[reached], weights[reached]
        n = len(xu)
        times = [torch.full((n,), v, dtype=torch.float64) for v in (t, u, s)]
        reader = MaskedReader(process)
        first = teacher_x0(oracle, reader, xt.expand(n, -1), times[0][:1].expand(n))
        target, scored = two_step_target(process, first, teacher_x0(oracle, reader, xu, times[1]), xu, *times)
        for pos in range(3):
            if start[pos] != m:
                continue
            marginal = torch.stack([law[states[:, pos] == v].sum() for v in range(process.width)])
            clean = marginal[:m] / (1 - marginal[m])  # the two-step law given that the position unmasks
            w = weights * scored[:, pos]
            expected = (w[:, None] * target[:, pos, :m]).sum(0) / w.sum()
            assert torch.allclose(expected, clean, atol=1e-12), (start, pos, expected, clean)
            assert float(clean.min()) > 0.01  # a law with real mass on every token, not a point
