"""Duo's Gaussian-relaxed curriculum (objectives/curriculum.py, docs/uniform.md#curriculum) on exact toys: a one-hot
soft input is the token, the relaxed draw has the uniform-state law q_t and Duo's variance-preserving latent, the
curriculum loss at tau -> 0 is the discrete loss at the same z_t, the temperature schedule, validation never relaxed,
prompt positions read clean, and the config errors."""

from __future__ import annotations

import math

import pytest
import torch

import dlm
from dlm.config import CurriculumConfig
from dlm.objectives.base import reduce_per_token
from dlm.objectives.curriculum import Curriculum, relaxed_draw
from dlm.process.gaussian_link import mu_of_alpha
from dlm.registry import ConfigError
from tests.tiny_models import TINY

VOCAB = 9


def uniform_model(*overrides: str, seed: int = 0) -> dlm.DiffusionLM:
    torch.manual_seed(seed)
    return dlm.DiffusionLM.from_config(dlm.load_config(None, [*TINY, "objective.name=uniform_elbo", *overrides]),
                                       vocab_size=VOCAB)


def ids(rows: int = 4, length: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (rows, length), generator=torch.Generator().manual_seed(seed))


def test_one_hot_soft_input_gives_the_logits_of_the_ids():
    model = uniform_model()
    x, t = ids(), torch.tensor([0.1, 0.4, 0.7, 1.0])
    soft = torch.nn.functional.one_hot(x, VOCAB).float()
    assert torch.equal(model.logits(soft, t), model.logits(x, t))
    mixed = 0.5 * soft + 0.5 * torch.nn.functional.one_hot((x + 1) % VOCAB, VOCAB).float()  # weights @ E is linear
    embed = model.backbone.embed.weight
    assert torch.allclose(mixed @ embed, 0.5 * (embed[x] + embed[(x + 1) % VOCAB]), atol=1e-7)


def test_the_relaxed_draw_has_the_uniform_state_law_and_duos_latent():
    n, rows = 7, 40_000
    x0 = torch.zeros(rows, 1, dtype=torch.long)
    for alpha in (0.05, 0.3, 0.8):
        z, soft = relaxed_draw(x0, torch.full((rows,), alpha, dtype=torch.float64), 1.0, n,
                               generator=torch.Generator().manual_seed(1))
        freq = torch.bincount(z.flatten(), minlength=n).double() / rows
        expected = torch.full((n,), (1 - alpha) / n, dtype=torch.float64)
        expected[0] += alpha
        se = torch.sqrt(expected * (1 - expected) / rows)
        assert bool(((freq - expected).abs() < 4 * se).all()), (alpha, freq, expected)
        # tau = 1: log soft is w up to a constant. Duo's latent alpha~ e_x + sigma~ eps, alpha~^2 + sigma~^2 = 1
        mu = float(mu_of_alpha(torch.tensor(alpha, dtype=torch.float64), n))
        w = torch.log(soft.double().squeeze(1))
        signal, noise = w[:, 0] - w[:, 1], w[:, 1] - w[:, 2]  # alpha~ + sigma~ (eps_0 - eps_1), sigma~ (eps_1 - eps_2)
        sigma = 1 / math.sqrt(1 + mu**2)
        assert abs(float(signal.mean()) - mu * sigma) < 4 * sigma * math.sqrt(2 / rows)
        assert abs(float(noise.var()) / (2 * sigma**2) - 1) < 4 * math.sqrt(2 / rows)


def test_at_zero_temperature_the_curriculum_loss_is_the_discrete_loss_at_the_same_draw():
    model = uniform_model("objective.curriculum.end=5", "objective.curriculum.tau_log10_start=-10",
                          "objective.curriculum.tau_log10_end=-10")
    objective, x0 = model.objective, ids()
    relaxed = model.loss(x0, generator=torch.Generator().manual_seed(3), step=2)
    replay = torch.Generator().manual_seed(3)  # the same t and the same Gaussian draw, read as tokens
    t = objective.sample_times(x0.shape[0], generator=replay, device=x0.device)
    zt, _ = relaxed_draw(x0, objective.process.schedule.alpha(t.double()), 1e-10, VOCAB, generator=replay)
    discrete = reduce_per_token(objective.integrand(model.logits(zt, t), x0, zt, t), None)
    assert torch.equal(relaxed.loss, discrete.loss)
    warm = uniform_model("objective.curriculum.end=5")  # tau = 0.1: the input is soft, the loss moves
    assert not torch.equal(warm.loss(x0, generator=torch.Generator().manual_seed(3), step=2).loss, discrete.loss)


def test_the_temperature_schedule():
    schedule = Curriculum(CurriculumConfig(start=10, end=20, tau_log10_start=-1.0, tau_log10_end=-3.0))
    for step, log10_tau in ((0, -1.0), (10, -1.0), (15, -2.0), (19, -2.8)):
        assert math.isclose(math.log10(schedule.temperature(step)), log10_tau, abs_tol=1e-12), step
    assert schedule.temperature(20) is None and schedule.temperature(None) is None  # after it, and outside training
    assert Curriculum(CurriculumConfig()).temperature(0) is None  # off by default
    constant = Curriculum(CurriculumConfig(start=0, end=4, tau_log10_start=-3.0, tau_log10_end=-3.0))
    assert [constant.temperature(k) for k in range(5)] == [1e-3] * 4 + [None]


def test_validation_and_steps_after_the_curriculum_are_the_plain_bound():
    x0 = ids()
    plain, relaxed = uniform_model(), uniform_model("objective.curriculum.end=5")  # the same weights (seed 0)

    def loss(model, step):
        return model.loss(x0, generator=torch.Generator().manual_seed(4), step=step).loss

    assert torch.equal(loss(relaxed, None), loss(plain, None))
    assert torch.equal(loss(relaxed, 5), loss(plain, 5))
    assert not torch.equal(loss(relaxed, 4), loss(plain, 4))


def test_prompt_positions_read_their_clean_token():
    model = uniform_model("objective.curriculum.end=5", "objective.condition_prefix=3")
    x0, seen = ids(), []

    def recorder(inputs, t):
        seen.append(inputs)
        return model.logits(inputs, t)

    model.objective.loss(recorder, x0, generator=torch.Generator().manual_seed(0), step=0)
    (inputs,) = seen
    assert torch.equal(inputs[:, :3], torch.nn.functional.one_hot(x0[:, :3], VOCAB).float())
    assert bool((inputs[:, 3:].amax(-1) < 1).any())  # the rest is relaxed


@pytest.mark.parametrize("overrides, message", [
    (["objective.curriculum.start=5", "objective.curriculum.end=3"], "start=5 must be <= objective.curriculum.end=3"),
    (["objective.curriculum.end=-1"], "must be >= 0"),
    (["objective.name=masked_elbo", "objective.curriculum.end=3"],
     "trains uniform_elbo models only, not 'masked_elbo'"),
])
def test_config_errors_are_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        dlm.DiffusionLM.from_config(dlm.load_config(None, [*TINY, "objective.name=uniform_elbo", *overrides]),
                                    vocab_size=VOCAB)
    assert "\n" not in str(error.value)


def test_a_soft_input_of_the_wrong_width_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"soft input must be float weights \(B, L, 9\)"):
        uniform_model().logits(torch.ones(2, 4, 5), torch.ones(2))
