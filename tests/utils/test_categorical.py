"""The float64 claim of utils/categorical.py: float32 Gumbel-max noise cannot draw far-tail tokens, which lowers the
effective temperature; the float64 noise of sample_categorical resolves them.

Gumbel-max in its exponential form draws argmax_k p_k / E_k, E_k = -log U_k. A float32 uniform lives on the grid
k 2^-24 (torch.rand), so E >= -log(1 - 2^-24) ~ 6e-8: a token whose weight relative to the winner is below ~6e-8 E
is never drawn. Too rare for Monte Carlo on a test budget, so the float32 law is computed exactly by enumerating
all 2^24 float32 uniforms (the winner's E0 ~ Exp(1) is integrated exactly).
"""

import math

import torch

from dlm.utils.categorical import inverse_cdf, sample_categorical, uniform_noise

W = 1e-8  # a tail token's weight relative to the head token


def float32_exponentials() -> torch.Tensor:
    """-log U computed in float32 for every float32 uniform U = k 2^-24, k = 1 .. 2^24 - 1 (sorted ascending)."""
    u = (torch.arange(1, 2**24, dtype=torch.float64) * 2.0**-24).float()
    return (-torch.log(u)).double().flip(0)


def test_float32_noise_draws_a_far_tail_token_at_a_small_fraction_of_its_rate():
    e1 = float32_exponentials()
    # two tokens [1, W]: the tail wins iff E0 > E1 / W; P(E0 > x) = exp(-x), averaged over the float32 E1
    rate32 = float(torch.exp(-e1 / W).sum()) * 2.0**-24
    exact = W / (1 + W)
    assert rate32 < 0.05 * exact, rate32 / exact  # about 1.5% of the true rate


def test_a_long_tail_loses_most_of_its_mass_in_float32():
    """Head 1 plus a 50k-token tail of weight W each (true tail mass ~5e-4): float32 draws under a tenth of it."""
    e1, n_tail = float32_exponentials(), 50_000
    m = 4000
    e0 = -torch.log1p(-(torch.arange(m, dtype=torch.float64) + 0.5) / m)  # E0 quantiles, midpoint rule
    q = torch.searchsorted(e1, W * e0).double() * 2.0**-24  # P(one tail token beats the head | E0), float32
    tail32 = float((1 - (1 - q) ** n_tail).mean())
    exact = n_tail * W / (1 + n_tail * W)
    assert tail32 < 0.1 * exact, tail32 / exact


def test_float64_noise_resolves_the_event_float32_cannot_represent():
    """With E0 = 1 the tail token of [1, W] wins iff U1 > exp(-W) ~ 1 - 1e-8: float64 uniforms reach it
    (sample_categorical flips exactly there), while the largest float32 uniform below 1 is 1 - 6e-8."""
    probs = torch.tensor([[1.0, W]], dtype=torch.float64)
    head = math.exp(-1.0)
    for u1, winner in [(1 - 0.9 * W, 1), (1 - 1.1 * W, 0)]:
        assert int(sample_categorical(probs, noise=torch.tensor([[head, u1]], dtype=torch.float64))) == winner
    top32 = torch.tensor(1 - 2.0**-24, dtype=torch.float32)
    assert float(-torch.log(top32)) > W  # no float32 uniform makes E1 < W * E0 here
    assert uniform_noise((2,)).dtype == torch.float64


def test_inverse_cdf_is_the_first_index_past_u_times_the_total():
    """Rows wider than one block, with zero runs: the two-level search gives the one-level float64 answer
    argmin{k : C_k > u C_N} for random u, and a zero entry is never drawn (also at u -> 1, where u C_N rounds)."""
    gen = torch.Generator().manual_seed(0)
    weights = torch.rand(6, 1300, generator=gen) * (torch.rand(6, 1300, generator=gen) < 0.3)
    weights[:, -40:] = 0  # trailing zeros: the largest u must land on the last positive entry
    u = torch.rand(6, 500, generator=gen, dtype=torch.float64)
    u[:, 0], u[:, 1] = 0.0, 1 - 2.0**-53
    cdf = weights.double().cumsum(-1)
    for row in range(6):
        drawn = inverse_cdf(weights[row].expand(500, -1), u[row])
        reference = torch.searchsorted(cdf[row], u[row] * cdf[row, -1], right=True)
        reference = reference.clamp_max(int(weights[row].nonzero().max()))
        assert torch.equal(drawn, reference)
        assert bool((weights[row, drawn] > 0).all())


def test_inverse_cdf_keeps_the_far_tail_of_float32_weights():
    """The tail token of float32 weights [1, W] owns the top W / (1 + W) of (0, 1): float64 sums resolve it, the
    interval float32 Gumbel noise cannot reach (first test above)."""
    probs = torch.tensor([[1.0, W]], dtype=torch.float32).expand(2, -1)
    tail = float(probs[0, 1]) / (1 + float(probs[0, 1]))
    u = torch.tensor([1 - 0.5 * tail, 1 - 2 * tail], dtype=torch.float64)
    assert inverse_cdf(probs, u).tolist() == [1, 0]
