"""One SDTT round on an exact toy: a table-lookup student (one free law per grid time and state), initialised from
an oracle teacher, learns the teacher's two-step marginal law, so its k-step law reaches the teacher's 2k-step law
up to the correlation between positions that one factorized step cannot carry, which is computed exactly here.
The teacher is an inexact table: an exact oracle is SDTT's fixed point (its per-position marginals are already
exact, so its two-step target equals its own one-step law) and would leave nothing to learn."""

from __future__ import annotations

import torch

from dlm.process import Absorbing, LogLinear
from dlm.sample.ancestral import Ancestral
from dlm.sample.exact import all_states, exact_law, step_kernel
from dlm.testing import Tabulated, ToyDistribution
from dlm.train.distill.readers import MaskedReader
from dlm.train.distill.sdtt import sdtt_loss
from tests.distill.oracles import TableStudent, oracle_table


def kl(p: torch.Tensor, q: torch.Tensor) -> float:
    keep = p > 0
    return float((p[keep] * (p[keep] / q[keep]).log()).sum())


def two_step_marginal_table(oracle, process, times: torch.Tensor, length: int) -> torch.Tensor:
    """log of the teacher's two-step clean law per position (k, S, L, N), from the composed exact kernels."""
    states, m = all_states(process.width, length), process.mask_id
    tables = []
    for i in range(len(times) - 1):
        t, s = float(times[i]), float(times[i + 1])
        u = (t + s) / 2
        law = step_kernel(Ancestral(), oracle, process, states, t, u) @ \
            step_kernel(Ancestral(), oracle, process, states, u, s)  # (S, S)
        per_position = torch.stack([torch.stack([law[:, states[:, l] == v].sum(1) for v in range(process.width)], -1)
                                    for l in range(length)], 1)  # (S, L, N)
        clean = per_position[..., :m] / (1 - per_position[..., m:]).clamp_min(1e-300)
        tables.append(torch.cat([clean, torch.zeros_like(per_position[..., m:])], -1))
    return torch.stack(tables).log().clamp_min(-1e30)


def test_one_round_reaches_the_teachers_two_step_law():
    toy, process = ToyDistribution(length=2, vocab=3, seed=3), Absorbing(3, LogLinear(eps=1e-3))
    k, length = 2, 2
    times, teacher_times = Ancestral().grid(k).times, Ancestral().grid(2 * k).times
    # an inexact teacher: the oracle's log x0 on the teacher's 2k-step grid, perturbed by fixed noise
    exact = oracle_table(Tabulated(toy, process), teacher_times, process.width, length)
    noise = torch.randn(exact.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    teacher = TableStudent(teacher_times, process.width, length, process.mask_id, init=exact + noise)
    student = TableStudent(times, process.width, length, process.mask_id, init=teacher.logits[::2].detach())
    projected = TableStudent(times, process.width, length, process.mask_id,
                             init=two_step_marginal_table(teacher, process, times, length))

    def law_of(model, steps=k):
        with torch.no_grad():
            return exact_law(Ancestral(), model, process, steps=steps, length=length)

    teacher_law = law_of(teacher, 2 * k)
    before, floor = kl(teacher_law, law_of(student)), kl(teacher_law, law_of(projected))
    optimizer = torch.optim.Adam(student.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / 300)
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        x0 = toy.states[torch.multinomial(toy.probs, 4096, replacement=True, generator=generator)]
        loss, _ = sdtt_loss(student, teacher, MaskedReader(process), x0, times, divergence_name="kl_fwd",
                            target_name="law",
                            generator=generator)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    after = kl(teacher_law, law_of(student))
    assert kl(law_of(projected), law_of(student)) < 2e-4, (before, after, floor)  # the best factorized k steps
    assert abs(after - floor) < 2e-4 and floor < 0.5 * before, (before, after, floor)

