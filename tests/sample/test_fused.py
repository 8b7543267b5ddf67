"""The fused masked path (dlm/sample/fused.py): its factorised law (w, q) is the explicit stage law, its bounds are
bounds, and its samples depend neither on the bounds nor on the chunking. The uniform mixture path
(dlm/sample/mixture.py): its (P, A, U) rebuilds the explicit stage law."""

from __future__ import annotations

import pytest
import torch

from dlm.process import Absorbing, Uniform
from dlm.sample import generate
from dlm.sample.base import get_sampler, undetermined_positions
from dlm.sample.chunks import PositionChunk
from dlm.sample.context import SamplingContext
from dlm.sample.exact import all_states
from dlm.sample.fused import FinalStage, StepStage
from dlm.sample.mixture import current_probs
from dlm.sample.noise import NoiseTape
from tests.sample.helpers import TOY, Tabulated

STAGED = [("ancestral", {}), ("ancestral", {"temperature": 0.7, "top_k": 2}), ("ancestral", {"temperature": 0.0}),
          ("analytic", {}), ("euler", {}), ("tau_leaping", {}), ("theta_trapezoidal", {}),
          ("theta_trapezoidal", {"theta": 0.3}), ("theta_rk2", {"theta": 0.4}), ("theta_rk2", {"theta": 0.8})]
T, S = 0.6, 0.35


def _normalized(p: torch.Tensor) -> torch.Tensor:
    p = p.double().clamp_min(0)
    return p / p.sum(-1, keepdim=True)


def _check_stage(ctx, sampler, stage, hist, whole):
    """At masked origins: (w, q) of mask_law reassemble `whole` (B, L, N) to 1e-12, and stay_bound <= w; at clean
    origins `whole` is the point mass on the origin."""
    mask = ctx.process.mask_id
    origin = stage.origin(hist)
    at_mask = origin == mask
    clean = whole[~at_mask]
    assert torch.equal(clean, torch.nn.functional.one_hot(origin[~at_mask], ctx.process.width).double())
    flat = at_mask.flatten().nonzero()[:, 0]
    chunk = PositionChunk(ctx, sampler.predict, hist, flat, {})
    prediction = chunk.predict(chunk.hist[0], T)
    w, q = stage.mask_law(chunk, chunk.hist, prediction)
    rebuilt = (1 - w).unsqueeze(-1) * q / q.sum(-1, keepdim=True).clamp_min(1e-300)  # q = 0 where w = 1
    rebuilt[:, mask] = w
    expected = whole.view(-1, whole.shape[-1])[flat]
    assert (rebuilt - expected).abs().max() < 1e-12
    bound = stage.stay_bound(ctx, hist, prediction)
    bound = bound.flatten()[flat] if isinstance(bound, torch.Tensor) else torch.full_like(w, bound)
    assert bool((bound <= w + 1e-12).all())
    return bound, w


@pytest.mark.parametrize("kind", ["mean", "score"])
@pytest.mark.parametrize("name, options", STAGED)
def test_fused_law_is_the_stage_law(name, options, kind):
    """Every toy state x_t, both stages (stage 2 from a drawn y*): w and q give stage_probs' law to 1e-12."""
    process = Absorbing(3)
    sampler = get_sampler(name, **options)
    ctx = SamplingContext(Tabulated(TOY, process, kind), process)
    xt = all_states(process.width, TOY.length)
    memo = {}
    whole = _normalized(sampler.stage_probs(ctx, [xt], memo, T, S))
    bound, w = _check_stage(ctx, sampler, StepStage(sampler, T, S), [xt], whole)
    if kind == "mean" or sampler.reshaped():
        assert torch.allclose(bound, w, atol=1e-12, rtol=0)  # the x_theta path: w is exact, no row is read
    if sampler.stages == 2:
        y_star = ctx.draw(whole, xt)
        second = _normalized(sampler.stage_probs(ctx, [xt, y_star], memo, T, S))
        _check_stage(ctx, sampler, StepStage(sampler, T, S), [xt, y_star], second)


@pytest.mark.parametrize("final", ["sample", "argmax"])
def test_fused_noise_removal_is_the_bayes_posterior(final):
    process = Absorbing(3)
    sampler = get_sampler("ancestral", final=final)
    ctx = SamplingContext(Tabulated(TOY, process), process)
    xt = all_states(process.width, TOY.length)
    whole = _normalized(sampler.final_rule(sampler.final_probs(ctx, xt, 1e-3)))
    stage = FinalStage(sampler, 1e-3)
    flat = (xt == process.mask_id).flatten().nonzero()[:, 0]
    chunk = PositionChunk(ctx, sampler.predict, [xt], flat, {})
    w, q = stage.mask_law(chunk, chunk.hist, chunk.predict(chunk.hist[0], 1e-3))
    assert bool((w == 0).all())
    assert (_normalized(q) - whole.view(-1, whole.shape[-1])[flat]).abs().max() < 1e-12


@pytest.mark.parametrize("name", ["ancestral", "tau_leaping", "theta_trapezoidal", "theta_rk2"])
def test_samples_do_not_depend_on_the_bounds(name, monkeypatch):
    """The bound only skips work: with it at 0 the same uniforms give the same samples, chunked or not."""
    process = Absorbing(3)
    den = Tabulated(TOY, process)

    def run(sampler, chunk):
        sampler.chunk_positions = chunk
        tape = NoiseTape()
        x = generate(den, process, sampler, steps=3, shape=(32, TOY.length),
                     generator=torch.Generator().manual_seed(3), noise=tape)
        return x, [d.shape for d in tape.draws]

    sampler = get_sampler(name)
    reference, shapes = run(sampler, 0)
    monkeypatch.setattr(type(sampler), "stay_bound", lambda self, process, hist, t, s: 0.0)
    for chunk in (1, -1):
        unbounded, unbounded_shapes = run(sampler, chunk)
        assert torch.equal(unbounded, reference)
        assert unbounded_shapes[0] == shapes[0]  # the decision uniforms: one per masked origin either way


def test_a_masked_step_draws_one_uniform_per_mask_and_one_per_leaver():
    """The noise of a fused ancestral step: U per masked position, then one per position that left (no V-wide
    Gumbel noise); positions already clean consume nothing."""
    process = Absorbing(3)
    tape = NoiseTape()
    states = []
    generate(Tabulated(TOY, process), process, "ancestral", steps=2, shape=(50, TOY.length),
             generator=torch.Generator().manual_seed(0), noise=tape, on_step=lambda i, t, x: states.append(x.clone()))
    masked = [int((x == process.mask_id).sum()) for x in states]
    assert [tuple(d.shape) for d in tape.draws[:4]] == [(masked[0],), (masked[0] - masked[1],), (masked[1],),
                                                        (masked[1] - masked[2],)]


@pytest.mark.parametrize("process_class", [Absorbing, Uniform])
@pytest.mark.parametrize("t", [0.0, 1e-5, 0.5, 1.0])
def test_undetermined_positions_need_no_pass_over_the_vocabulary(t, process_class):
    """The shortcuts (absorbing: the masks, uniform: every position, while alpha_t < 1) are the generic rule: more
    than one allowed clean x0."""
    process = process_class(3)
    xt = all_states(process.width, TOY.length)
    generic = process.allowed_x0(xt, torch.full((len(xt),), t, dtype=torch.float64)).sum(-1) > 1
    assert torch.equal(undetermined_positions(process, xt, t), generic)


MIXED = [("ancestral", {}), ("analytic", {}), ("euler", {}), ("tau_leaping", {})]


def _rebuilt(mixture, x0: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """The explicit law (n, N) a Mixture stands for: P at x_t + A x_theta + U uniform (both off x_t if excluded)."""
    n, width = x0.shape
    at = torch.nn.functional.one_hot(current, width).double()
    theta, spread = x0.clone(), torch.full_like(x0, 1.0 / width)
    if mixture.excludes:
        theta, spread = theta * (1 - at), (1 - at) / (width - 1)
    theta = theta / theta.sum(-1, keepdim=True).clamp_min(1e-300)
    law = mixture.point[:, None] * at + mixture.theta[:, None] * theta + mixture.uniform[:, None] * spread
    return law / law.sum(-1, keepdim=True)


def _uniform_parts(ctx, stage, xt, t):
    """(mixture, x_theta (n, N), current (n,)) at every position of xt, as mixture_draw computes them."""
    prediction = ctx.predict(xt, t)
    assert stage.mixes(ctx.process, prediction)
    log_probs, current = prediction.log_probs.flatten(0, 1), xt.flatten()
    _, p_x = current_probs(log_probs, current)
    return stage.mixture(ctx.process, p_x), _normalized(log_probs.exp()), current


@pytest.mark.parametrize("name, options", MIXED)
def test_uniform_mixture_is_the_stage_law(name, options):
    """Uniform process, every toy state x_t: the mixture (P, A, U) rebuilds stage_probs to 1e-12."""
    process = Uniform(3)
    sampler = get_sampler(name, **options)
    ctx = SamplingContext(Tabulated(TOY, process), process)
    xt = all_states(process.width, TOY.length)
    whole = _normalized(sampler.stage_probs(ctx, [xt], {}, T, S)).view(-1, process.width)
    mixture, x0, current = _uniform_parts(ctx, StepStage(sampler, T, S), xt, T)
    assert (_rebuilt(mixture, x0, current) - whole).abs().max() < 1e-12


def test_uniform_noise_removal_mixture_is_the_bayes_posterior():
    process = Uniform(3)
    sampler = get_sampler("ancestral")
    ctx = SamplingContext(Tabulated(TOY, process), process)
    xt = all_states(process.width, TOY.length)
    whole = _normalized(sampler.final_probs(ctx, xt, 1e-3)).view(-1, process.width)
    mixture, x0, current = _uniform_parts(ctx, FinalStage(sampler, 1e-3), xt, 1e-3)
    assert (_rebuilt(mixture, x0, current) - whole).abs().max() < 1e-12


@pytest.mark.parametrize("name, options, kind", [("ancestral", {"temperature": 0.7}, "mean"),
                                                 ("ancestral", {}, "score"), ("theta_rk2", {}, "mean"),
                                                 ("ancestral", {"final": "argmax"}, "final")])
def test_uniform_laws_without_a_mixture_keep_the_explicit_draw(name, options, kind):
    """Reshaped x_theta, score models, two-stage samplers and argmax noise removal are no mixture of x_theta."""
    process = Uniform(3)
    sampler = get_sampler(name, **options)
    ctx = SamplingContext(Tabulated(TOY, process, "score" if kind == "score" else "mean"), process)
    xt = all_states(process.width, TOY.length)
    stage = FinalStage(sampler, 1e-3) if kind == "final" else StepStage(sampler, T, S)
    assert not stage.mixes(process, ctx.predict(xt, stage.t))


def test_a_uniform_step_draws_two_uniforms_per_position():
    """The noise of a mixture step: U1 (the part) and U2 (the token) per position, no V-wide Gumbel noise."""
    process = Uniform(3)
    tape = NoiseTape()
    generate(Tabulated(TOY, process), process, "tau_leaping", steps=2, shape=(50, TOY.length),
             generator=torch.Generator().manual_seed(0), noise=tape)
    assert [tuple(d.shape) for d in tape.draws] == [(50 * TOY.length,)] * 7  # prior, 2 steps and noise removal


def test_current_probs_survives_logits_whose_exp_overflows():
    """Raw logits (a bare Tensor from a user denoiser) far above 88: p_x is still the softmax at the current token."""
    logits = torch.tensor([[1000.0, 999.0, 0.0], [-1000.0, -1001.0, -2000.0], [0.0, 1.0, 2.0]])
    current = torch.tensor([1, 0, 2])
    _, p_x = current_probs(logits, current)
    expected = torch.softmax(logits.double(), -1).gather(-1, current[:, None])[:, 0]
    assert torch.allclose(p_x, expected, rtol=1e-6, atol=0)
