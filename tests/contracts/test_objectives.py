"""Contract for every registered objective: finite gradients on a tiny model, and each loss equals its paper's
formula on fixed inputs (docs/masked.md, docs/score_entropy.md, docs/uniform.md)."""

import math

import pytest
import torch
import torch.nn.functional as F

import dlm
from dlm.objectives.masked_elbo import MaskedELBO, subs
from dlm.process import Absorbing, LogLinear, Uniform
from dlm.process.absorbing import absorbing_score_entropy, masked_integrand
from dlm.process.uniform import uniform_integrand
from dlm.registry import OBJECTIVES, ConfigError
from tests.tiny_models import SETUPS, TINY


def test_every_registered_objective_has_a_setup():
    assert set(OBJECTIVES) == set(SETUPS)


@pytest.mark.parametrize("name", SETUPS)
def test_builds_from_its_name_alone_and_trains_one_step(name):
    """`objective.name=X` alone is a valid config: the objective's own defaults fill the process and time settings,
    the model builds, and one optimizer step on a toy batch lowers nothing to NaN."""
    cfg = dlm.load_config(None, TINY + [f"objective.name={name}"])
    family = OBJECTIVES[name]
    assert cfg.process.name == (family.default_process or "none")
    assert cfg.objective.time_conditioning == family.default_time_conditioning
    model = dlm.DiffusionLM.from_config(cfg, vocab_size=9)
    assert model.config.process.name == cfg.process.name
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x0 = torch.randint(0, 9, (4, 24), generator=torch.Generator().manual_seed(0))
    before = model.loss(x0, generator=torch.Generator().manual_seed(1)).loss
    before.backward()
    optimizer.step()
    after = model.loss(x0, generator=torch.Generator().manual_seed(1)).loss
    assert torch.isfinite(after) and after < before  # the same draws, one step downhill


def test_a_config_that_names_the_process_keeps_it():
    cfg = dlm.load_config(None, ["objective.name=score_entropy", "process.name=uniform",
                                 "objective.time_sampler=uniform"])
    assert (cfg.process.name, cfg.objective.time_conditioning, cfg.objective.time_sampler) == \
        ("uniform", True, "uniform")


@pytest.mark.parametrize("name", SETUPS)
def test_finite_loss_and_gradients(name):
    cfg = dlm.load_config(None, TINY + [f"objective.name={name}"])
    model = dlm.DiffusionLM.from_config(cfg, vocab_size=9)
    x0 = torch.randint(0, 9, (4, 24), generator=torch.Generator().manual_seed(0))
    out = model.loss(x0, generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.loss > 0
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def _fixed(B=3, L=5, V=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randint(0, V, (B, L), generator=gen), torch.randn(B, L, V + 1, generator=gen, dtype=torch.float64),
            torch.rand(B, generator=gen, dtype=torch.float64) * 0.9 + 0.05)


def test_subs_rows():
    """SUBS (docs/masked.md): unmasked rows are exactly one-hot; the mask column is <= -1e6 + eps everywhere."""
    x0, logits, _ = _fixed()
    xt = torch.where(torch.rand(x0.shape, generator=torch.Generator().manual_seed(1)) < 0.5, 6, x0)
    log_probs = subs(logits, xt, mask_id=6)
    unmasked = xt != 6
    assert torch.all(log_probs[unmasked].exp().max(-1).values == 1)
    assert torch.all(log_probs[..., 6] <= -1e6 + 1e-3)
    torch.testing.assert_close(log_probs[~unmasked].exp().sum(-1), torch.ones(int((~unmasked).sum())))


def test_masked_integrand_is_one_over_t_cross_entropy():
    x0, logits, t = _fixed()
    xt = torch.where(torch.rand(x0.shape, generator=torch.Generator().manual_seed(2)) < 0.6, 6, x0)
    log_probs = subs(logits, xt, 6).double()
    got = masked_integrand(log_probs, x0, xt, 6, LogLinear().masked_weight(t))
    ce = F.cross_entropy(log_probs.transpose(1, 2), x0, reduction="none")
    torch.testing.assert_close(got, ce / t[:, None] * (xt == 6))


def test_masked_continuous_matches_fine_discrete_time():
    """The T=10^4 discrete-time weight T (alpha_s - alpha_t)/(1 - alpha_t) converges to the continuous one."""
    cfg = dlm.load_config(None, ["objective.discrete_steps=10000"]).objective
    discrete = MaskedELBO(Absorbing(6), cfg)
    t = torch.tensor([0.05, 0.3, 0.77, 1.0], dtype=torch.float64)
    torch.testing.assert_close(discrete.weight(t), LogLinear().masked_weight(t), rtol=2e-3, atol=0)


def test_sedd_absorbing_equals_weighted_cross_entropy_at_normalized_output():
    """docs/score_entropy.md: with exp(s_y) = c_y / (e^sigma - 1), sum_y c_y = 1, SE = -log c_{x0} / (e^sigma - 1)."""
    x0, logits, t = _fixed()
    sigma = LogLinear().sigma(t)
    log_c = torch.log_softmax(logits[..., :6], -1)
    log_score = torch.cat([log_c - torch.log(torch.expm1(sigma))[:, None, None],
                           torch.zeros(*x0.shape, 1, dtype=torch.float64)], -1)  # s_m = 0 at the current state
    xt = torch.full_like(x0, 6)
    got = absorbing_score_entropy(log_score, x0, xt, sigma, mask_id=6)
    expected = -log_c.gather(-1, x0[..., None])[..., 0] / torch.expm1(sigma)[:, None]
    torch.testing.assert_close(got, expected)


def test_score_entropy_vanishes_at_the_true_conditional_score():
    """SE >= 0 with equality at s_y = q_t(y | x0) / q_t(x_t | x0), for both graphs."""
    for process in (Absorbing(5), Uniform(5)):
        gen = torch.Generator().manual_seed(3)
        x0 = torch.randint(0, 5, (2, 7), generator=gen)
        t = torch.tensor([0.3, 0.8], dtype=torch.float64)
        xt = process.corrupt(x0, t, generator=gen)
        q = process.marginal(F.one_hot(x0, process.width).double(), process.schedule.alpha(t))
        true_log_score = torch.log(q) - torch.log(q.gather(-1, xt[..., None]))
        sigma = process.schedule.sigma(t)
        se = process.score_entropy(true_log_score, x0, xt, sigma)
        torch.testing.assert_close(se, torch.zeros_like(se), atol=1e-9, rtol=0)
        worse = true_log_score + 0.3 * torch.randn(true_log_score.shape, generator=gen, dtype=torch.float64)
        worse = worse.scatter(-1, xt[..., None], 0.0)
        se_worse = process.score_entropy(worse, x0, xt, sigma)
        assert torch.all(se_worse >= -1e-12) and se_worse.sum() > 0


def test_uniform_elbo_matches_literal_udlm_formula_and_vanishes_at_perfect_denoiser():
    """docs/uniform.md: the UDLM ELBO written out term by term over j, against our closed form."""
    V = 6
    x0, logits, t = _fixed(V=V - 1)
    process = Uniform(V, LogLinear())
    xt = process.corrupt(x0, t, generator=torch.Generator().manual_seed(4))
    log_probs = torch.log_softmax(logits, -1)
    alpha, dalpha = process.schedule.alpha(t)[:, None, None], process.schedule.dalpha(t)[:, None, None]
    bar = V * alpha * F.one_hot(x0, V).double() + (1 - alpha)
    bar_theta = V * alpha * log_probs.exp() + (1 - alpha)
    bz, btz = bar.gather(-1, xt[..., None]), bar_theta.gather(-1, xt[..., None])
    inner = (bar / bz) * (torch.log(btz) - torch.log(bar_theta) + torch.log(bar) - torch.log(bz))
    literal = (dalpha / (V * alpha))[..., 0] * (V / bz[..., 0] - V / btz[..., 0] - inner.sum(-1))
    got = uniform_integrand(log_probs, x0, xt, process.schedule, t)
    torch.testing.assert_close(got, literal)
    assert torch.all(got >= -1e-12)
    perfect = uniform_integrand(torch.log(F.one_hot(x0, V).double().clamp_min(1e-300)), x0, xt, process.schedule, t)
    torch.testing.assert_close(perfect, torch.zeros_like(perfect), atol=1e-9, rtol=0)


def test_radd_lambda_dce_on_fixed_inputs():
    """RADD: loss = sum_{masked} -log c(x0) / lambda, per-token mean; reproduced with the same generator draws."""
    cfg = dlm.load_config(None, TINY + ["objective.name=radd", "objective.time_sampler=uniform"])
    model = dlm.DiffusionLM.from_config(cfg, vocab_size=9)
    x0 = torch.randint(0, 9, (4, 24), generator=torch.Generator().manual_seed(0))
    out = model.loss(x0, generator=torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)
    lam = torch.rand(4, generator=gen, dtype=torch.float64).clamp_min(1e-3)
    move = torch.rand(x0.shape, generator=gen, dtype=torch.float64) < lam[:, None]
    xt = torch.where(move, 9, x0)
    log_c = model(xt, lam.float()).log_probs.double()
    ce = -log_c.gather(-1, x0[..., None])[..., 0]
    expected = (ce * move / lam[:, None]).sum() / x0.numel()
    assert math.isclose(out.loss.item(), expected.item(), rel_tol=1e-5)


def test_autoregressive_loss_is_next_token_cross_entropy():
    cfg = dlm.load_config(None, TINY + ["objective.name=autoregressive"])
    model = dlm.DiffusionLM.from_config(cfg, vocab_size=9)
    x0 = torch.randint(0, 9, (4, 24), generator=torch.Generator().manual_seed(0))
    logits = model.backbone(x0)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 9), x0[:, 1:].reshape(-1))
    torch.testing.assert_close(model.loss(x0).loss, expected)
    torch.testing.assert_close(model.elbo(x0).sum().float() / (4 * 23), expected)


def test_the_objective_chooses_and_checks_the_sampler():
    """objective.sampler(): the caller's choice or the family's default, checked against the process with a one-line
    error naming what can run; the AR baseline always decodes left to right."""
    uniform = dlm.DiffusionLM.from_config(dlm.load_config(None, TINY + ["objective.name=uniform_elbo"]), 9)
    assert uniform.objective.sampler().name == "ancestral"
    assert uniform.objective.sampler("euler", temperature=0.5).temperature == 0.5
    with pytest.raises(ConfigError, match=r"choose a sampler for it: .*ancestral.*euler") as error:
        uniform.objective.sampler("confidence")  # remasking needs an absorbing process
    assert "\n" not in str(error.value)
    ar = dlm.DiffusionLM.from_config(dlm.load_config(None, TINY + ["objective.name=autoregressive"]), 9)
    assert ar.objective.sampler("confidence", block_size=4).name == "autoregressive"
