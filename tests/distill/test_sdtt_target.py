"""SDTT's target on an exact toy: its expectation over the teacher's intermediate draw is the teacher's two-step law
of each position, computed in closed form by composing the ancestral kernel over every state."""

from __future__ import annotations

import torch

from dlm.process import Absorbing, LogLinear
from dlm.sample.ancestral import Ancestral
from dlm.sample.exact import all_states, state_index, step_kernel
from dlm.testing import Tabulated, ToyDistribution
from dlm.train.distill.readers import MaskedReader
from dlm.train.distill.sdtt import sampled_target, student_step_times, teacher_x0, two_step_target
from tests.distill.oracles import TableStudent, oracle_table


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


def test_expected_sampled_target_weighs_the_teachers_calls_by_the_first_steps_unmasking():
    """The reference's target: x_T(.|x_t) w.p. p1 = (alpha_u - alpha_t)/(1 - alpha_t), else x_T(.|x_u) given
    that l is still masked at u; the draws of x_u are weighted by the teacher's ancestral kernel. The teacher is
    inexact (an exact one is consistent, E[x_T(.|x_u)] = x_T(.|x_t), and every weighting gives the same mean)."""
    toy, process = ToyDistribution(length=3, vocab=3, seed=2), Absorbing(3, LogLinear(eps=1e-3))
    teacher_times = Ancestral().grid(2).times  # the table's keys: t = 1 and u = 0.5
    exact = oracle_table(Tabulated(toy, process), teacher_times, process.width, 3)
    noise = torch.randn(exact.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    oracle = TableStudent(teacher_times, process.width, 3, process.mask_id, init=exact + noise)
    states, m = all_states(process.width, 3), process.mask_id
    t, u = 1.0, 0.5
    xt = torch.tensor([[m, 1, m]])
    weights = step_kernel(Ancestral(), oracle, process, states, t, u)[state_index(xt, process.width)][0]
    reached = weights > 0
    xu, weights = states[reached], weights[reached]
    n, reader = len(xu), MaskedReader(process)
    first = teacher_x0(oracle, reader, xt.expand(n, -1), torch.full((n,), t, dtype=torch.float64))
    second = teacher_x0(oracle, reader, xu, torch.full((n,), u, dtype=torch.float64))
    target, scored = sampled_target(first, second, xt.expand(n, -1), xu, m)
    assert torch.equal(scored, (xt == m).expand(n, -1))
    alpha_t, alpha_u = (float(process.schedule.alpha(torch.tensor(v, dtype=torch.float64))) for v in (t, u))
    p1 = (alpha_u - alpha_t) / (1 - alpha_t)
    for pos in (0, 2):
        still = xu[:, pos] == m
        second_given_masked = (weights[still, None] * second[still, pos]).sum(0) / weights[still].sum()
        expected = p1 * first[0, pos] + (1 - p1) * second_given_masked
        assert torch.allclose((weights[:, None] * target[:, pos]).sum(0), expected, atol=1e-12), pos


def test_student_step_times_cover_the_grid_or_its_span():
    times = Ancestral().grid(4).times  # (5,) decreasing from 1 to the sampler's eps
    pairs, generator = 400, torch.Generator().manual_seed(0)
    t, s = student_step_times(times, pairs, "grid", generator, torch.device("cpu"))
    index = torch.cat([(times == v).nonzero()[0] for v in t])
    assert torch.equal(torch.bincount(index, minlength=4)[:4], torch.full((4,), pairs // 4))  # stratified
    assert torch.equal(s, times[index + 1])
    t, s = student_step_times(times, pairs, "uniform", generator, torch.device("cpu"))
    span = float(times[0] - times[-1])
    bins = ((times[0] - t) / span * 4).floor().long().clamp_max(3)
    assert torch.equal(torch.bincount(bins, minlength=4), torch.full((4,), pairs // 4))  # stratified on the span
    assert len(set(t.tolist()) & set(times.tolist())) == 0  # off the grid
    assert torch.allclose(s, (t - span / 4).clamp_min(float(times[-1])), atol=0, rtol=0)
    assert bool((s < t).all()) and float(s.min()) == float(times[-1])
