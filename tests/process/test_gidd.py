"""GIDD's own math (arXiv 2503.04482, docs/gidd.md), checked where the paper's claims are exact: the mixing
schedule's shape, the forward rates against finite differences of the marginals, the p_u = 0 reduction to MDLM and
the exact reverse step. (The registry contracts in tests/contracts and tests/sample check it like every process.)"""

import torch

from dlm.process import LogLinear
from dlm.process.absorbing import masked_integrand
from dlm.process.gidd import GIDD

V = 4


def onehot(x: int, width: int) -> torch.Tensor:
    return torch.eye(width, dtype=torch.float64)[x].view(1, 1, -1)


def test_marginals_run_from_the_data_to_all_masks_with_the_uniform_share_peaking_at_p_u():
    process = GIDD(V, LogLinear(eps=0.0), p_uniform=0.2)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    q = process.marginal_at(onehot(1, V + 1).expand(3, 1, -1), t)[:, 0]
    torch.testing.assert_close(q[0], onehot(1, V + 1)[0, 0])  # q_0 = e_x
    torch.testing.assert_close(q[2], onehot(V, V + 1)[0, 0])  # q_1 = e_m
    grid = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    share = process.shares(grid)[2] * V  # c_t / C_t
    assert abs(float(share.max()) - 0.2) < 1e-12 and abs(float(grid[share.argmax()]) - 0.5) < 1e-12


def test_forward_rates_match_finite_differences_of_the_marginals():
    """d/dt q_t(z) = g_t(z) - q_t(z) sum_y g_t(y): the rates the ELBO weights w = g / q are built from."""
    process = GIDD(V, LogLinear(eps=1e-3), p_uniform=0.3)
    t, h = torch.tensor([0.1, 0.45, 0.8], dtype=torch.float64), 1e-6
    x = onehot(2, V + 1).expand(3, 1, -1)
    derivative = (process.marginal_at(x, t + h) - process.marginal_at(x, t - h)) / (2 * h)
    g_mask, g_clean = process.rates_into(t)
    g = torch.cat([g_clean[:, None].expand(-1, V), g_mask[:, None]], -1)[:, None]  # (3, 1, V + 1)
    q = process.marginal_at(x, t)
    torch.testing.assert_close(derivative, g - q * g.sum(-1, keepdim=True), rtol=1e-6, atol=1e-8)


def test_without_uniform_noise_the_bound_is_mdlm():
    """p_u = 0: the integrand is -log x_theta(x0) / t at masks and 0 elsewhere (MDLM)."""
    process = GIDD(V, LogLinear(eps=0.0), p_uniform=0.0)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, V, (6, 7), generator=gen)
    t = torch.rand(6, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    xt = process.corrupt(x0, t, generator=gen)
    logits = torch.randn(6, 7, V + 1, generator=gen, dtype=torch.float64)
    log_probs = torch.log_softmax(logits.index_fill(-1, torch.tensor([V]), -1e6), -1)
    got = process.elbo_integrand(log_probs, x0, xt, t).double()
    expected = masked_integrand(log_probs, x0, xt, V, LogLinear(eps=0.0).masked_weight(t))
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_one_reverse_step_of_the_exact_denoiser_lands_on_the_marginal():
    """z_t ~ q_t(. | x) and x_theta = e_x: sum_z q_t(z | x) p(z_s | z_t = z) = q_s(. | x) exactly."""
    process = GIDD(V, LogLinear(eps=0.0), p_uniform=0.25)
    t, s = torch.tensor([0.7], dtype=torch.float64), torch.tensor([0.4], dtype=torch.float64)
    x = onehot(3, V + 1)
    q_t = process.marginal_at(x, t)[0, 0]
    landed = sum(q_t[z] * process.posterior(torch.tensor([[z]]), x, t, s)[0, 0] for z in range(V + 1))
    torch.testing.assert_close(landed, process.marginal_at(x, s)[0, 0], rtol=1e-12, atol=1e-14)
