"""For the absorbing process, SEDD's score-entropy integrand with the score set to the normalized MDLM prediction
scaled by alpha/(1 - alpha) equals MDLM's masked-ELBO integrand, per position; for any other score it is larger by
sigma'(t) r (e^c - 1 - c) >= 0, c the log of the score's mass over r (docs/likelihood_fidelity.md)."""

import math

import pytest
import torch

from dlm.config import ObjectiveConfig
from dlm.objectives.masked_elbo import MaskedELBO
from dlm.objectives.score_entropy import ScoreEntropy
from dlm.process.absorbing import Absorbing, absorbing_score_entropy, masked_integrand
from dlm.process.schedules import build_schedule
from dlm.utils.cross_entropy import logsumexp_except

V, B, L = 7, 5, 9  # vocabulary, batch, length; the mask id is V, the width V + 1


def toy(seed: int = 0):
    """Random logits (B, L, V + 1) float64, clean x0, a corrupted x_t with masks and clean tokens, t in (0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    process = Absorbing(V, build_schedule("loglinear", eps=1e-3))
    logits = 3 * torch.randn(B, L, V + 1, generator=gen, dtype=torch.float64)
    x0 = torch.randint(0, V, (B, L), generator=gen)
    t = torch.tensor([1e-3, 0.05, 0.3, 0.7, 1.0], dtype=torch.float64)
    xt = process.corrupt(x0, t, generator=gen)
    xt[:, 0], xt[:, 1] = V, x0[:, 1]  # every row has a mask and a clean token
    return process, logits, x0, xt, t


def mdlm_log_prediction(logits):
    """log x_theta (B, L, V + 1) of SUBS at a mask: log-softmax over the clean columns, -inf at the mask."""
    log_x = logits - logsumexp_except(logits, V).unsqueeze(-1)
    log_x[..., V] = -math.inf
    return log_x


def sedd_integrand(process, log_score, x0, xt, t, offset=None):
    """sigma'(t) * SE in float64 (the objective's integrand before its float32 cast)."""
    sigma, dsigma = process.schedule.sigma(t), process.schedule.dsigma(t)
    return dsigma[:, None] * absorbing_score_entropy(log_score, x0, xt, sigma, V, offset)


def test_sedd_integrand_of_the_scaled_normalized_prediction_equals_mdlm_per_position():
    process, logits, x0, xt, t = toy()
    log_x = mdlm_log_prediction(logits)
    mdlm = masked_integrand(log_x, x0, xt, V, process.schedule.masked_weight(t))
    r = torch.exp(-process.schedule.sigma(t)) / -torch.expm1(-process.schedule.sigma(t))  # alpha / (1 - alpha)
    log_score = log_x + torch.log(r)[:, None, None]  # s_y = x_theta(y) alpha / (1 - alpha)
    sedd = sedd_integrand(process, log_score, x0, xt, t)
    assert (mdlm[xt == V] > 0).all() and (mdlm[xt != V] == 0).all()
    torch.testing.assert_close(sedd, mdlm, rtol=0, atol=1e-10)


def test_the_same_through_sedd_output_scaling():
    """The raw SEDD output h = log x_theta + log V (scale_by_sigma subtracts log expm1(sigma) + log V) gives it too."""
    process, logits, x0, xt, t = toy(1)
    log_x = mdlm_log_prediction(logits)
    mdlm = masked_integrand(log_x, x0, xt, V, process.schedule.masked_weight(t))
    offset = process.log_score_offset(process.schedule.sigma(t), V + 1)
    sedd = sedd_integrand(process, log_x + math.log(V), x0, xt, t, offset)
    torch.testing.assert_close(sedd, mdlm, rtol=0, atol=1e-10)


def test_any_other_score_gives_a_larger_integrand_by_the_mass_gap():
    """SEDD(h) - MDLM(softmax(h)) = sigma' r (e^c - 1 - c), c = logsumexp_{y != m} s_y - log r: zero only at c = 0."""
    process, logits, x0, xt, t = toy(2)
    sigma = process.schedule.sigma(t)
    r = (1 / torch.expm1(sigma))[:, None]
    c = logsumexp_except(logits, V) - torch.log(r)
    gap = process.schedule.dsigma(t)[:, None] * r * (torch.expm1(c) - c) * (xt == V)
    mdlm = masked_integrand(mdlm_log_prediction(logits), x0, xt, V, process.schedule.masked_weight(t))
    sedd = sedd_integrand(process, logits, x0, xt, t)
    torch.testing.assert_close(sedd - mdlm, gap, rtol=1e-12, atol=1e-10)
    assert (gap[xt == V] > 0).all()


@pytest.mark.parametrize("t_value", [0.01, 0.5, 0.99])
def test_the_training_integrands_agree_on_the_same_network_function(t_value):
    """The objectives' own integrands (what training minimizes): MaskedELBO on the logits, ScoreEntropy on their
    normalized log x_theta plus log V, equal to float32 precision (ScoreEntropy reads sigma in float32)."""
    process, logits, x0, xt, _ = toy(3)
    t = torch.full((B,), t_value, dtype=torch.float64)
    cfg = ObjectiveConfig(name="x", time_conditioning=True)
    mdlm = MaskedELBO(process, cfg).integrand(logits, x0, xt, t)
    sedd = ScoreEntropy(process, cfg).integrand(mdlm_log_prediction(logits) + math.log(V), x0, xt, t).double()
    torch.testing.assert_close(sedd, mdlm, rtol=1e-5, atol=1e-6)
