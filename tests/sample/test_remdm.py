"""ReMDM remasking samplers: sigma = 0 is ancestral, the step keeps the forward marginals, valid laws under the bound,
convergence on the exact toy, and what remasking may touch."""

import pytest
import torch

from dlm.process import Absorbing, Cosine
from dlm.registry import ConfigError
from dlm.sample import NFECounter, generate, get_sampler
from dlm.sample.context import SamplingContext
from dlm.sample.exact import all_states, exact_law, step_kernel, total_variation
from dlm.sample.grids import TimeGrid
from dlm.sample.remdm import mask_stay, sigma_max
from tests.sample.helpers import PROCESSES, TOY, Tabulated, ToyDistribution, mc_floor, mc_threshold
from tests.sample.test_convergence import N_SAMPLES, clean_law, sample_law

MASK = 3


def oracle(kind: str = "mean", toy: ToyDistribution = TOY, schedule=None) -> Tabulated:
    return Tabulated(toy, Absorbing(3, schedule) if schedule else PROCESSES["absorbing"](), kind)


@pytest.mark.parametrize("schedule", [None, Cosine()])
@pytest.mark.parametrize("kind", ["mean", "score"])
@pytest.mark.parametrize("options", [{"eta": 0.0}, {"schedule": "rescale", "eta": 0.0}])
def test_sigma_zero_is_the_ancestral_law(options, kind, schedule):
    """To 1e-12, on the log-linear and the cosine schedule (ReMDM reads alpha off the process's schedule)."""
    den = oracle(kind, schedule=schedule)
    for steps in (2, 8):
        remdm = exact_law(get_sampler("remdm", **options), den, den.process, steps=steps, length=3)
        ancestral = exact_law(get_sampler("ancestral"), den, den.process, steps=steps, length=3)
        assert float((remdm - ancestral).abs().max()) < 1e-12


def test_sigma_zero_draws_the_ancestral_tokens():
    """Same noise, same tokens: sigma = 0 consumes no remasking uniforms (prompt, semi-AR blocks, top-p)."""
    den = oracle()
    prompt = torch.tensor([[1, MASK, MASK]]).expand(500, 3)
    known = torch.tensor([[True, False, False]])
    outs = [generate(den, den.process, get_sampler(name, block_size=1, top_p=0.9, **opts), steps=4, prompt=prompt,
                     prompt_mask=known, generator=torch.Generator().manual_seed(3))
            for name, opts in (("remdm", {"eta": 0.0}), ("ancestral", {}))]
    assert torch.equal(outs[0], outs[1])


def factorized_toy() -> ToyDistribution:
    """TOY's three marginals, made independent: p(x) = prod_l p_l(x^l)."""
    toy = ToyDistribution(length=3, vocab=3, seed=1)
    marginals = [torch.stack([toy.probs[toy.states[:, l] == v].sum() for v in range(3)]) for l in range(3)]
    toy.probs = torch.stack([marginals[0][a] * marginals[1][b] * marginals[2][c] for a, b, c in toy.states.tolist()])
    return toy, marginals


def forward_law(marginals, alpha: float, states) -> torch.Tensor:
    """q_alpha(z) = prod_l [alpha p_l(z^l) if z^l is a token, 1 - alpha if the mask] over the 4^3 states."""
    law = torch.ones(len(states), dtype=torch.float64)
    for l, p in enumerate(marginals):
        column = states[:, l]
        law *= torch.where(column == MASK, 1 - alpha, alpha * torch.cat([p, p.new_zeros(1)])[column])
    return law


@pytest.mark.parametrize("options", [{"eta": 0.3}, {"schedule": "rescale", "eta": 0.7},
                                     {"schedule": "loop", "eta": 0.1, "t_on": 0.6, "t_off": 0.2, "alpha_on": 0.8}])
def test_a_step_keeps_the_forward_marginals(options):
    """Factorized data, exact denoiser: from q_{alpha_t} one ReMDM step lands exactly on q_{alpha_s}, for every step
    of the grid (the loop's three phases included), although decoded tokens are remasked."""
    toy, marginals = factorized_toy()
    den = oracle(toy=toy)
    sampler, states = get_sampler("remdm", **options), all_states(4, 3)
    grid = TimeGrid.linear(10)
    remasked = 0.0
    for i in range(grid.steps):
        alpha_t, alpha_s, sigma = sampler.levels(den.process, grid.t(i), grid.s(i))
        remasked = max(remasked, sigma)
        start = forward_law(marginals, alpha_t, states)
        law = start @ step_kernel(sampler, den, den.process, states, grid.t(i), grid.s(i))
        assert float((law - forward_law(marginals, alpha_s, states)).abs().max()) < 1e-12
    assert remasked > 0.05


def test_remasking_probabilities_are_valid_under_the_bound():
    """Random alpha_t <= alpha_s and sigma in [0, sigma_max]: stay and leave probabilities in [0, 1]; past the bound
    (when it is below 1) the stay probability is negative."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(2000):
        alpha_t, alpha_s = sorted(torch.rand(2, generator=gen, dtype=torch.float64).tolist())
        bound = sigma_max(alpha_t, alpha_s)
        sigma = bound * float(torch.rand(1, generator=gen, dtype=torch.float64))
        for value in (sigma, bound):
            stay = mask_stay(alpha_t, alpha_s, value)
            assert -1e-12 <= stay <= 1 + 1e-12 and 0 <= value <= 1
        if bound < 1 and alpha_t > 0:
            assert mask_stay(alpha_t, alpha_s, bound * 1.01 + 1e-9) < 0


@pytest.mark.parametrize("options", [{}, {"schedule": "rescale", "eta": 0.3}, {"schedule": "loop"},
                                     {"eta": 0.5, "top_p": 0.8}])
def test_stage_laws_are_distributions(options):
    den, sampler = oracle(), get_sampler("remdm", **options)
    ctx, states = SamplingContext(den, den.process), all_states(4, 3)
    grid = TimeGrid.linear(7)
    for i in range(grid.steps):
        law = sampler.stage_probs(ctx, [states], {}, grid.t(i), grid.s(i))
        assert float(law.min()) >= 0 and float((law.sum(-1) - 1).abs().max()) < 1e-12


@pytest.mark.parametrize("options", [{"schedule": "rescale"}, {"schedule": "loop"}])
def test_schedules_converge_on_the_exact_toy(options):
    """The registry contract's tolerances (test_convergence.py) for the schedules beyond the default cap: the exact
    law falls at least first order to under 0.6 of the Monte Carlo floor at 64 steps, and samples reach it."""
    den = oracle()
    errors = [total_variation(clean_law(exact_law(get_sampler("remdm", **options), den, den.process, steps=steps,
                                                  length=3), "absorbing"), TOY.probs) for steps in (4, 16, 64)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < errors[0] / 8
    assert errors[2] < 0.6 * mc_floor(TOY.probs, N_SAMPLES)
    fine = clean_law(exact_law(get_sampler("remdm", **options), den, den.process, steps=64, length=3), "absorbing")
    emp = sample_law("remdm", "absorbing", 64, seed=4, **options)
    assert total_variation(emp, TOY.probs) < errors[2] + mc_threshold(fine, N_SAMPLES)


def test_samples_follow_the_exact_law_with_heavy_remasking():
    """sigma = sigma_max (rescale, eta 1; far from ancestral): generate's draws follow the composed stage kernels."""
    den, options = oracle(), {"schedule": "rescale", "eta": 1.0}
    law = clean_law(exact_law(get_sampler("remdm", **options), den, den.process, steps=3, length=3), "absorbing")
    ancestral = clean_law(exact_law(get_sampler("ancestral"), den, den.process, steps=3, length=3), "absorbing")
    emp = sample_law("remdm", "absorbing", 3, seed=5, **options)
    assert total_variation(emp, law) < mc_threshold(law, N_SAMPLES)
    assert total_variation(law, ancestral) > mc_threshold(law, N_SAMPLES)  # the test sees remasking


def trajectory(sampler, steps=12, length=10, block_size=0):
    """States of one (64, length) run of a context-free model with a 2-token prompt, and its NFE."""
    probs = torch.softmax(torch.randn(length, 3, generator=torch.Generator().manual_seed(0)), -1)
    log_probs = torch.cat([probs.log(), torch.full((length, 1), float("-inf"))], -1)
    den = NFECounter(lambda xt, t: log_probs[: xt.shape[1]].expand(xt.shape[0], -1, -1))
    states = []
    prompt = torch.tensor([[2, 0]]).expand(64, 2)
    generate(den, Absorbing(3), sampler, steps=steps, shape=(64, length), prompt=prompt, generator=torch.Generator(
        ).manual_seed(1), on_step=lambda i, t, x: states.append(x.clone()))
    return states, den.calls


@pytest.mark.parametrize("schedule", ["cap", "rescale", "conf", "loop"])
def test_remasking_touches_only_decoded_tokens_of_the_block(schedule):
    """Tokens do return to the mask, one denoiser call per step, never a prompt token, never outside the block."""
    eta = {"cap": 0.3, "rescale": 0.5, "conf": None, "loop": 0.1}[schedule]
    states, nfe = trajectory(get_sampler("remdm", schedule=schedule, eta=eta, block_size=4), steps=12)
    assert 12 <= nfe <= 12 + 3  # 12 steps over 3 blocks, and a noise removal for each block with masks left
    remasked = 0
    for a, b in zip(states, states[1:]):
        back = (a != MASK) & (b == MASK)
        remasked += int(back.sum())
        assert not bool(back[:, :2].any())
        changed = (a != b).any(0).nonzero().flatten()
        if len(changed):
            assert int(changed.max()) - int(changed.min()) < 4 and int((changed - 2).min()) >= 0
    assert remasked > 0
    assert int((states[-1] == MASK).sum()) == 0


def test_conf_remasks_the_least_confident_tokens():
    """conf: sigma^l = sigma_max softmax(-p)^l over the decoded positions; a token drawn at p = 0.05 goes back more
    often than one drawn at p = 0.95, at the predicted rates (many identical rows, one step)."""
    sampler = get_sampler("remdm", schedule="conf")
    den = oracle()
    rows = 40000
    xt = torch.tensor([[0, 1, MASK]]).expand(rows, 3).clone()
    ctx = SamplingContext(den, den.process, generator=torch.Generator().manual_seed(0))
    ctx.state["remdm_psi"] = torch.tensor([[-0.05, -0.95, float("-inf")]], dtype=torch.float64).expand(rows, 3).clone()
    grid = TimeGrid.linear(4)
    xs = sampler.step(ctx, xt, grid, 1).xs
    alpha_t, alpha_s, bound = sampler.levels(den.process, grid.t(1), grid.s(1))
    expected = bound * torch.softmax(torch.tensor([-0.05, -0.95]), 0)
    rate = (xs[:, :2] == MASK).double().mean(0)
    assert torch.allclose(rate, expected.double(), atol=4 * (0.25 / rows) ** 0.5)
    assert rate[0] > rate[1]


def test_options_are_checked():
    with pytest.raises(ConfigError, match="no eta"):
        get_sampler("remdm", schedule="conf", eta=0.1)
    with pytest.raises(ConfigError, match="sigma_max"):
        get_sampler("remdm", schedule="loop", eta=0.5, alpha_on=0.9)
    with pytest.raises(ConfigError, match="t_off"):
        get_sampler("remdm", schedule="loop", t_on=0.2, t_off=0.4)
    with pytest.raises(ConfigError, match="remdm schedule"):
        get_sampler("remdm", schedule="capped")
    with pytest.raises(ConfigError, match="has no per-step law"):
        exact_law(get_sampler("remdm", schedule="conf"), oracle(), oracle().process, steps=2, length=3)
