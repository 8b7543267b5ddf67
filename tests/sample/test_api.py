"""generate() and get_sampler(): registry, options, shapes and prompts, callbacks, one-line errors."""

import pytest
import torch

from dlm.process import Absorbing, Uniform
from dlm.registry import SAMPLERS, ConfigError
from dlm.sample import Ancestral, TimeGrid, generate, get_sampler
from tests.sample.helpers import TOY

NAMES = {"ancestral", "ancestral_cache", "analytic", "euler", "tau_leaping", "theta_trapezoidal", "theta_rk2",
         "confidence", "autoregressive"}


def test_every_contract_name_is_registered():
    assert NAMES <= set(SAMPLERS)


@pytest.mark.parametrize("call, message", [
    (lambda: get_sampler("ancestrl"), "did you mean 'ancestral'"),
    (lambda: get_sampler("ancestral", theta=0.5), "has no option 'theta'"),
    (lambda: get_sampler("ancestral", temperature=-1.0), "temperature"),
    (lambda: get_sampler("ancestral", final="greedy"), "final must be"),
    (lambda: get_sampler("theta_trapezoidal", theta=1.0), "0 < theta < 1"),
    (lambda: get_sampler("theta_rk2", theta=0.0), "0 < theta <= 1"),
    (lambda: TimeGrid.linear(0), "steps"),
    (lambda: generate(TOY.denoiser(Uniform(3)), Uniform(3), get_sampler("tau_leaping", block_size=2), steps=2,
                      shape=(1, 3)), "block_size"),
    (lambda: generate(TOY.denoiser(Absorbing(3)), Absorbing(3), "ancestral", steps=2), "shape"),
    (lambda: generate(TOY.denoiser(Absorbing(3)), Absorbing(3), "ancestral", steps=2, shape=(1, 2),
                      prompt=torch.zeros(1, 3, dtype=torch.long)), "prefix"),
    (lambda: generate(TOY.denoiser(Absorbing(3)), Absorbing(3), "ancestral", steps=2, shape=(1, 3),
                      prompt_mask=torch.ones(1, 3, dtype=torch.bool)), "needs a prompt"),
])
def test_user_errors_are_one_line_config_errors(call, message):
    with pytest.raises(ConfigError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_prefix_prompt_instance_options_and_callback():
    seen = []
    prompt = torch.tensor([[2]])
    x = generate(TOY.denoiser(Absorbing(3)), Absorbing(3), Ancestral(temperature=0.9, top_p=0.95), steps=5,
                 shape=(4, 3), prompt=prompt, generator=torch.Generator().manual_seed(0),
                 on_step=lambda i, t, xt: seen.append((i, t, xt.clone())))
    assert bool((x[:, 0] == 2).all()) and int(x.max()) < 3
    assert [i for i, _, _ in seen] == list(range(7))
    times = [t for _, t, _ in seen]
    assert times[0] == 1.0 and times[-2] == pytest.approx(1e-5) and times[-1] == 0.0
    assert all(a > b for a, b in zip(times, times[1:]))
    assert bool((seen[0][2][:, 1:] == 3).all())  # starts from the prior, prompt clamped


def test_cache_is_passed_through_to_the_denoiser():
    received = []
    oracle = TOY.denoiser(Absorbing(3))

    def denoiser(xt, t, cache=None):
        received.append(cache)
        return oracle(xt, t)

    token = object()
    generate(denoiser, Absorbing(3), "ancestral", steps=3, shape=(2, 3), cache=token)
    assert received and all(c is token for c in received)


@pytest.mark.parametrize("name", ["ancestral", "tau_leaping", "theta_trapezoidal"])
def test_final_argmax_leaves_no_mask(name):
    x = generate(TOY.denoiser(Absorbing(3)), Absorbing(3), get_sampler(name, final="argmax"), steps=1,
                 shape=(64, 3), generator=torch.Generator().manual_seed(0))
    assert int(x.max()) < 3


def test_linear_grid():
    grid = TimeGrid.linear(4, eps=1e-5)
    assert grid.steps == 4 and grid.t(0) == 1.0 and grid.s(3) == grid.end == pytest.approx(1e-5)
    assert grid.t(1) - grid.s(1) == pytest.approx((1 - 1e-5) / 4)
