"""The process's reverse math: conversions between denoiser outputs (mean <-> concrete score <-> rates, x0
posteriors) against exact enumeration on a toy (dlm/process/base.py)."""

import pytest
import torch

from dlm.denoiser import as_prediction
from dlm.process import Absorbing, LogLinear, Uniform
from dlm.sample.analytic import staggered_step
from dlm.sample.exact import all_states
from tests.sample.helpers import TOY

PROCESSES = [Absorbing(3, LogLinear(1e-3)), Uniform(3, LogLinear(1e-3))]


def _inputs(process, t_value):
    xt = all_states(process.width, TOY.length)
    return xt, torch.full((len(xt),), t_value, dtype=torch.float64)


def _reachable(process, xt, t):
    """States with p_t(x_t) > 0 (under absorbing, some clean-token contexts have probability 0)."""
    return TOY.marginal_t(process, xt, t) > 0


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("t_value", [0.05, 0.5, 0.97])
def test_mean_to_score_equals_enumerated_concrete_score(process, t_value):
    xt, t = _inputs(process, t_value)
    mean = as_prediction(TOY.denoiser(process)(xt, t))
    exact = TOY.score_denoiser(process)(xt, t).log_score.exp()
    ours = process.prediction_score(mean, xt, t)
    # s_y = p_t(x^{l<-y}) / p_t(x) wherever the reverse chain can leave x^l (pi_{x^l} > 0: masks under absorbing,
    # every token under uniform); out of a clean absorbing token the rate is 0 whatever the score says
    keep = _reachable(process, xt, t)[:, None] & (process.limit(exact)[xt] > 0)
    torch.testing.assert_close(ours[keep], exact[keep], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("t_value", [0.05, 0.5, 0.97])
def test_score_to_mean_inverts_the_conversion(process, t_value):
    xt, t = _inputs(process, t_value)
    keep = _reachable(process, xt, t)
    mean = process.x0_probs(as_prediction(TOY.denoiser(process)(xt, t)), xt, t)
    from_score = process.x0_from_score(TOY.score_denoiser(process)(xt, t).log_score.exp(), xt, t)
    torch.testing.assert_close(from_score[keep], mean[keep], rtol=1e-8, atol=1e-10)
    assert torch.allclose(mean.sum(-1), torch.ones(()).double())
    if isinstance(process, Absorbing):  # never the mask; clean tokens are carried over
        assert float(mean[..., process.mask_id].abs().max()) == 0.0
        clean = xt != process.mask_id
        assert torch.equal(mean[clean].argmax(-1), xt[clean]) and bool((mean[clean].max(-1).values == 1).all())


def test_absorbing_score_is_x0_over_expm1_sigma():
    """docs/score_entropy.md: at a mask, s_y = x_theta(y) / expm1(sigma(t)) and s_mask = 1."""
    process = Absorbing(3, LogLinear(1e-3))
    xt, t = _inputs(process, 0.3)
    x0 = process.x0_probs(as_prediction(TOY.denoiser(process)(xt, t)), xt, t)
    score = process.concrete_score(xt, x0, t)
    masked = xt == process.mask_id
    expm1 = torch.expm1(process.schedule.sigma(t))[:, None, None].expand_as(score)[masked]
    torch.testing.assert_close(score[masked][:, :3], x0[masked][:, :3] / expm1[:, :3])
    assert torch.allclose(score[masked][:, 3], torch.ones(()).double())


def test_analytic_staggered_step_on_absorbing_equals_mdlm_posterior():
    """docs/samplers.md#analytic: SEDD's analytic step with s = c / (e^sigma - 1) is the MDLM posterior to 1e-12."""
    process = Absorbing(3, LogLinear(1e-3))
    xt, t = _inputs(process, 0.6)
    s = torch.full_like(t, 0.45)
    x0 = process.x0_probs(as_prediction(TOY.denoiser(process)(xt, t)), xt, t)
    staggered = staggered_step(process, process.concrete_score(xt, x0, t), xt, t, s)
    staggered = staggered.clamp_min(0) / staggered.clamp_min(0).sum(-1, keepdim=True)
    torch.testing.assert_close(staggered, process.posterior(xt, x0, t, s), rtol=0, atol=1e-12)


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: type(p).__name__)
def test_mean_rates_equal_score_rates_and_masked_weight(process):
    xt, t = _inputs(process, 0.4)
    x0 = process.x0_probs(as_prediction(TOY.denoiser(process)(xt, t)), xt, t)
    from_mean = process.mean_rates(x0, xt, t)
    from_score = process.reverse_rates(process.concrete_score(xt, x0, t), xt, t)
    torch.testing.assert_close(from_mean, from_score, rtol=1e-10, atol=1e-12)
    if isinstance(process, Absorbing):  # from a mask: rate masked_weight(t) x_theta(y); from a clean token: 0
        masked = xt == process.mask_id
        weight = float(process.schedule.masked_weight(t[:1]))
        torch.testing.assert_close(from_mean[masked][:, :3], weight * x0[masked][:, :3])
        assert float(from_mean[~masked].abs().max()) == 0.0


def test_rates_stay_finite_at_alpha_zero():
    """LogLinear(eps=0) has alpha_1 = 0: the mean form gives the finite rate 1/t = 1 (the score form: 0 * inf)."""
    process = Absorbing(3, LogLinear(eps=0.0))
    xt, t = _inputs(process, 1.0)
    x0 = process.x0_probs(as_prediction(TOY.denoiser(process)(xt, t)), xt, t)
    rates = process.mean_rates(x0, xt, t)
    masked = xt == process.mask_id
    torch.testing.assert_close(rates[masked][:, :3], x0[masked][:, :3])


def test_bayes_posterior_and_projection():
    process = Uniform(3, LogLinear(1e-3))
    xt, t = _inputs(process, 0.5)
    x0 = process.x0_probs(as_prediction(TOY.denoiser(process)(xt, t)), xt, t)
    posterior = process.x0_posterior(x0, xt, t)
    # Bayes: p(x0^l | x_t) from the joint, by enumeration
    lik = TOY._likelihoods(process, xt, t)
    joint = TOY.probs[None] * lik.prod(-1)
    exact = torch.stack([(joint[:, :, None] * (TOY.states[None, :, l, None] == torch.arange(3))).sum(1)
                         for l in range(3)], 1)
    torch.testing.assert_close(posterior, exact / exact.sum(-1, keepdim=True))
    # a row with no allowed mass falls back to uniform over what x_t allows (carry-over under absorbing)
    absorbing = Absorbing(3)
    xt = torch.tensor([[0, 3]])
    projected = absorbing.project_x0(torch.zeros(1, 2, 4, dtype=torch.float64), xt, torch.tensor([0.5]))
    torch.testing.assert_close(projected[0], torch.tensor([[1.0, 0, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0]]).double())
