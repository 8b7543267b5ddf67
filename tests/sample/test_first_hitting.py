"""First-hitting sampling (sample/first_hitting.py, arXiv 2409.02908): the time of the next unmasking has the exact
law ((1 - alpha_tau) / (1 - alpha_t))^n ~ U(0, 1), one token per call, rows with their own times. Its law on the
exact toy is checked with every sampler in test_convergence.py."""

import pytest
import torch

from dlm.process import Absorbing
from dlm.process.schedules import build_schedule
from dlm.sample import NFECounter, generate, get_sampler
from dlm.sample.first_hitting import hitting_time
from tests.sample.helpers import TOY, Tabulated

N = 6000


@pytest.mark.parametrize("schedule", ["loglinear", "cosine"])
def test_hitting_time_solves_its_equation(schedule):
    law = build_schedule(schedule)
    g = torch.Generator().manual_seed(0)
    t = torch.rand(1000, generator=g, dtype=torch.float64)
    masked = torch.randint(1, 20, (1000,), generator=g)
    u = torch.rand(1000, generator=g, dtype=torch.float64)
    tau = hitting_time(law, t, masked, u)
    assert bool((tau <= t).all())
    ratio = (1 - law.alpha(tau)) / (1 - law.alpha(t))  # 1 - alpha near 0 cancels: cosine's loses ~1e-10
    torch.testing.assert_close(ratio, u.pow(1.0 / masked.double()), rtol=1e-8, atol=1e-12)


def test_the_times_a_row_is_called_at_follow_the_first_hitting_law():
    """loglinear: t_1 = u_1^{1/3}, t_2 = t_1 u_2^{1/2}, t_3 = t_2 u_3 for three masks, u_k ~ U(0, 1) independent:
    each (t_k / t_{k-1})^{n_k} is uniform (Kolmogorov-Smirnov at 99.9%: 1.95 / sqrt(N))."""
    oracle, calls = Tabulated(TOY, Absorbing(3)), []

    def recording(xt, t):
        calls.append(t.double().clone())
        return oracle(xt, torch.full_like(t, 0.5))

    x = generate(recording, oracle.process, "first_hitting", steps=1, shape=(N, 3),
                 generator=torch.Generator().manual_seed(1))
    assert len(calls) == 3 and not (x == 3).any()  # one call per token, nothing left masked
    previous = torch.ones(N, dtype=torch.float64)
    for n, t in zip((3, 2, 1), calls):
        u = (t / previous).pow(n).sort().values
        assert float((u - torch.arange(1, N + 1) / N).abs().max()) < 1.95 / N ** 0.5
        previous = t
    assert float(calls[0].std()) > 0  # the rows have their own times


def test_one_token_per_call_and_rows_independent_of_their_batch():
    oracle = Tabulated(TOY, Absorbing(3))
    counter = NFECounter(lambda xt, t: oracle(xt, torch.full_like(t, 0.5)))
    generators = [torch.Generator().manual_seed(s) for s in range(5)]
    sampler = get_sampler("first_hitting")
    batch = generate(counter, oracle.process, sampler, steps=7, shape=(5, 3), generator=generators)
    assert counter.calls == 3
    for row in range(5):
        alone = generate(counter, oracle.process, sampler, steps=7, shape=(1, 3),
                         generator=[torch.Generator().manual_seed(row)])
        assert torch.equal(alone, batch[row:row + 1])
