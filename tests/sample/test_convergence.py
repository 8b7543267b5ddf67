"""Every sampler on every process it supports converges to the exact toy distribution as steps grow.

A contract over the whole SAMPLERS registry and the whole PROCESSES registry: each sampler x each registered
process whose capabilities meet the sampler's `needs` (the autoregressive sampler needs no process, process=None),
so a new process or sampler is checked here with no edit. Stage samplers (they define `stage_probs`) are checked in
two views: the exact law they produce (exact.py, no Monte Carlo) falls towards p(x0), and the empirical law of
`generate` samples (a) matches that exact law at few steps and (b) reaches the Monte Carlo floor at many steps.
Samplers that couple positions have their exact setting in COUPLED; a new sampler with neither fails here.
"""

from functools import cache

import pytest
import torch

from dlm.denoiser import as_prediction
from dlm.registry import PROCESSES, SAMPLERS
from dlm.sample import Sampler, generate, get_sampler
from dlm.sample.base import runs_on
from dlm.sample.exact import exact_law, total_variation
from dlm.types import Prediction
from tests.sample.helpers import BOS, TOY, Tabulated, causal_oracle, empirical_law, mc_floor, mc_threshold

N_SAMPLES = 6000


def toy_process(process_name: str):
    """The registered process over the toy's 3 tokens with its default schedule; None for "none" (no process)."""
    return None if process_name == "none" else PROCESSES[process_name](TOY.vocab)


DECLARED = [(name, process_name) for name in sorted(SAMPLERS) for process_name in [*sorted(PROCESSES), "none"]
            if runs_on(SAMPLERS[name], toy_process(process_name))]
STAGE_SAMPLERS = sorted(name for name, cls in SAMPLERS.items() if cls.stage_probs is not Sampler.stage_probs)
# steps (default 64) where the exact bias is at most ~0.6x the floor of N_SAMPLES draws (asserted below)
FINE_STEPS = {"absorbing": {"theta_trapezoidal": 16},
              "uniform": {"theta_trapezoidal": 32, "tau_leaping": 128, "theta_rk2": 128, "euler": 128}}


@cache
def oracle(process_name: str, kind: str) -> Tabulated:
    return Tabulated(TOY, toy_process(process_name), kind)


def clean_law(law, process_name):
    """Law over the 27 clean sequences (a process with a mask state has laws on 4^3 states; after noise removal no
    mask is left)."""
    width = toy_process(process_name).width
    if width > TOY.vocab:
        cube = law.reshape(width, width, width)
        assert float(cube.sum() - cube[:3, :3, :3].sum()) < 1e-12
        return cube[:3, :3, :3].reshape(-1)
    return law


def sample_law(name, process_name, steps, kind="mean", seed=0, **options):
    den = oracle(process_name, kind)
    x = generate(den, den.process, get_sampler(name, **options), steps=steps, shape=(N_SAMPLES, 3),
                 generator=torch.Generator().manual_seed(seed))
    assert int(x.max()) < 3, "a mask survived noise removal"
    return empirical_law(x, 3)


def test_the_registry_is_covered():
    assert {"ancestral", "analytic", "euler", "tau_leaping", "theta_trapezoidal", "theta_rk2"} <= set(STAGE_SAMPLERS)
    assert ("autoregressive", "none") in DECLARED and ("confidence", "uniform") not in DECLARED
    assert {name for name, _ in DECLARED} == set(SAMPLERS)


@pytest.mark.parametrize("kind", ["mean", "score"])
@pytest.mark.parametrize("name, process_name", [pair for pair in DECLARED if pair[0] in STAGE_SAMPLERS])
def test_exact_law_converges(name, process_name, kind):
    den = oracle(process_name, kind)
    errors = [total_variation(clean_law(exact_law(get_sampler(name), den, den.process, steps=steps, length=3),
                                        process_name), TOY.probs) for steps in (4, 16, 64)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < errors[0] / 8  # at least first order: 16x the steps, error below 1/8
    assert errors[2] < 0.03


def exact_clean_law(name, process_name, steps, kind="mean"):
    den = oracle(process_name, kind)
    return clean_law(exact_law(get_sampler(name), den, den.process, steps=steps, length=3), process_name)


@pytest.mark.parametrize("name, process_name", DECLARED)
def test_samples_reach_the_monte_carlo_floor(name, process_name):
    """TV(samples, p) <= TV(exact law, p) + the 99.9% Monte Carlo bound, with the exact bias under 0.6 floor."""
    if name not in STAGE_SAMPLERS:
        assert name in COUPLED, f"sampler '{name}' has no stage kernels: give it an exact setting in COUPLED"
        return COUPLED[name](process_name)
    floor = mc_floor(TOY.probs, N_SAMPLES)
    coarse = exact_clean_law(name, process_name, 2)
    emp_coarse = sample_law(name, process_name, steps=2)
    # (a) generate draws from exactly the law the stage kernels compose to
    assert total_variation(emp_coarse, coarse) < mc_threshold(coarse, N_SAMPLES)
    # (b) two steps are far from p(x0) ...
    assert total_variation(emp_coarse, TOY.probs) > 3 * floor
    # (c) ... and many steps reach the Monte Carlo floor
    steps = FINE_STEPS.get(process_name, {}).get(name, 64)
    fine = exact_clean_law(name, process_name, steps)
    bias = total_variation(fine, TOY.probs)
    assert bias < 0.6 * floor
    emp_fine = sample_law(name, process_name, steps=steps, seed=1)
    assert total_variation(emp_fine, TOY.probs) < bias + mc_threshold(fine, N_SAMPLES)


@pytest.mark.parametrize("process_name", ["absorbing", "uniform"])
@pytest.mark.parametrize("name", ["analytic", "euler", "tau_leaping", "theta_trapezoidal"])
def test_score_models_reach_the_monte_carlo_floor(name, process_name):
    """SEDD-style Prediction(log_score) denoisers drive the same samplers to the same floor."""
    steps = FINE_STEPS.get(process_name, {}).get(name, 64)
    fine = exact_clean_law(name, process_name, steps, kind="score")
    emp = sample_law(name, process_name, steps=steps, kind="score", seed=2)
    assert total_variation(emp, TOY.probs) < total_variation(fine, TOY.probs) + mc_threshold(fine, N_SAMPLES)


def confidence_with_random_order_is_exact_and_one_shot_is_not(process_name):
    """One token per step in a uniformly random order is exact ancestral-order sampling; all at once is not."""
    bound = mc_threshold(TOY.probs, N_SAMPLES)
    assert total_variation(sample_law("confidence", process_name, 3, remasking="random"), TOY.probs) < bound
    assert total_variation(sample_law("confidence", process_name, 1, remasking="random"), TOY.probs) > 3 * bound


def entropy_bound_zero_is_exact_and_a_loose_bound_is_not(process_name):
    """gamma = 0: one position per step from its exact conditional, in an order set by the revealed tokens only
    (lowest entropy first): p(x0) exactly. A bound that admits every position at once samples the product law."""
    bound = mc_threshold(TOY.probs, N_SAMPLES)
    assert total_variation(sample_law("entropy_bounded", process_name, 1, gamma=0.0), TOY.probs) < bound
    assert total_variation(sample_law("entropy_bounded", process_name, 1, gamma=100.0), TOY.probs) > 3 * bound


def first_hitting_is_exact_at_any_steps(process_name):
    """One position per step, uniformly chosen among the masks, drawn from its exact conditional: p(x0) exactly,
    whatever `steps` says (it is not used). Each row has its own time; the exact absorbing x_theta does not depend
    on it, so the tabulated oracle is asked at one time."""
    den = oracle(process_name, "mean")

    def law(**options):
        x = generate(lambda xt, t: den(xt, torch.full_like(t, 0.5)), den.process, get_sampler("first_hitting",
                     **options), steps=1, shape=(N_SAMPLES, 3), generator=torch.Generator().manual_seed(0))
        return empirical_law(x, 3)

    bound = mc_threshold(TOY.probs, N_SAMPLES)
    assert total_variation(law(), TOY.probs) < bound
    assert total_variation(law(temperature=0.0), TOY.probs) > 3 * bound


def autoregressive_samples_follow_the_joint(process_name):
    """Left to right from the exact next-token law after BOS: p(x0) exactly."""
    assert process_name == "none"
    x = generate(causal_oracle, None, "autoregressive", steps=1, shape=(N_SAMPLES, TOY.length + 1),
                 prompt=torch.full((N_SAMPLES, 1), BOS), generator=torch.Generator().manual_seed(0))
    assert total_variation(empirical_law(x[:, 1:], 3), TOY.probs) < mc_threshold(TOY.probs, N_SAMPLES)


def blocks_of_one_token_are_exact_and_one_shot_is_not(process_name):
    """The block sampler on the exact block denoiser (the toy's posterior given the window, the positions after it
    unknown; the exact absorbing x_theta does not depend on t): blocks of one token are the chain rule, exact; one
    block of all three in one step is not, unless first hitting decodes it (one exact token per call)."""
    den = oracle(process_name, "mean")
    mask = den.process.mask_id

    def windowed(xt, t):  # the window x[:, :end] with every later position still masked
        full = torch.full((xt.shape[0], TOY.length), mask, dtype=torch.long)
        full[:, :xt.shape[1]] = xt
        return Prediction(log_probs=as_prediction(den(full, torch.full_like(t, 0.5))).log_probs[:, :xt.shape[1]])

    def law(block_size, steps, inner="ancestral"):
        sampler = get_sampler("block", block_size=block_size, inner=inner)
        x = generate(windowed, den.process, sampler, steps=steps, shape=(N_SAMPLES, TOY.length),
                     generator=torch.Generator().manual_seed(0))
        return empirical_law(x, 3)

    bound = mc_threshold(TOY.probs, N_SAMPLES)
    assert total_variation(law(1, 1), TOY.probs) < bound
    assert total_variation(law(3, 1), TOY.probs) > 3 * bound
    assert total_variation(law(3, 1, inner="first_hitting"), TOY.probs) < bound


COUPLED = {"confidence": confidence_with_random_order_is_exact_and_one_shot_is_not,
           "entropy_bounded": entropy_bound_zero_is_exact_and_a_loose_bound_is_not,
           "first_hitting": first_hitting_is_exact_at_any_steps,
           "autoregressive": autoregressive_samples_follow_the_joint,
           "block": blocks_of_one_token_are_exact_and_one_shot_is_not}


def test_semi_ar_blocks_of_one_token_are_exact():
    """block_size=1: each block reveals one position from its exact conditional, left to right: p(x0) exactly."""
    emp = sample_law("ancestral", "absorbing", 3, block_size=1)
    assert total_variation(emp, TOY.probs) < mc_threshold(TOY.probs, N_SAMPLES)
