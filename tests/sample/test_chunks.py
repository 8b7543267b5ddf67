"""Chunked stage laws (dlm/sample/chunks.py) equal the whole (B, L, N) laws, and chunking leaves samples unchanged."""

from __future__ import annotations

import pytest
import torch

from dlm.sample import generate
from dlm.sample.base import get_sampler
from dlm.sample.chunks import chunk_laws
from dlm.sample.context import SamplingContext
from dlm.sample.exact import all_states
from dlm.sample.noise import NoiseTape
from tests.sample.helpers import PROCESSES, TOY, Tabulated

STAGED = [("ancestral", {}), ("ancestral", {"temperature": 0.7, "top_k": 2}), ("analytic", {}), ("euler", {}),
          ("tau_leaping", {}), ("theta_trapezoidal", {}), ("theta_rk2", {"theta": 0.4})]


def _normalized(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp_min(0)
    return p / p.sum(-1, keepdim=True)


def _assembled(ctx, sampler, hist, memos, law, size: int) -> torch.Tensor:
    """The chunked laws put back together as (B, L, N); unvisited positions keep hist[-1] (a point mass)."""
    out = torch.nn.functional.one_hot(hist[-1], ctx.process.width).double()
    active = ctx.process.movable(hist[0])
    for chunk, probs in chunk_laws(ctx, sampler.predict, hist, memos, law, active, size):
        out.view(-1, out.shape[-1])[chunk.flat] = _normalized(probs[:, 0])
    return out


@pytest.mark.parametrize("process_name", ["absorbing", "uniform"])
@pytest.mark.parametrize("kind", ["mean", "score"])
@pytest.mark.parametrize("name, options", STAGED)
def test_chunked_step_laws_equal_whole_laws(process_name, kind, name, options):
    """Every stage law of one step from every toy state x_t (and for 2-stage solvers, from a drawn y*) is the same,
    to 1e-12 in float64, whether computed on the whole (B, L, N) tensor or 1, 2 or 5 positions at a time."""
    process = PROCESSES[process_name]()
    sampler = get_sampler(name, **options)
    ctx = SamplingContext(Tabulated(TOY, process, kind), process)
    xt = all_states(process.width, TOY.length)  # (N^L, L): every state, masks and clean tokens mixed
    t, s = 0.6, 0.35

    def law(c, hist, memo):
        return sampler.stage_probs(c, hist, memo, t, s)

    whole_memo = {}
    whole = _normalized(law(ctx, [xt], whole_memo))
    y_star = ctx.draw(whole, xt)
    for size in (1, 2, 5):
        memos = {}
        assert (_assembled(ctx, sampler, [xt], memos, law, size) - whole).abs().max() < 1e-12
        if sampler.stages == 2:
            second = _normalized(law(ctx, [xt, y_star], whole_memo))
            assert (_assembled(ctx, sampler, [xt, y_star], memos, law, size) - second).abs().max() < 1e-12


SAMPLED = [(process_name, name) for process_name in ("absorbing", "uniform")
           for name in ("ancestral", "euler", "theta_rk2", "analytic", "tau_leaping")]
SAMPLED += [("absorbing", "confidence"), ("absorbing", "ancestral_cache")]  # masked-only samplers


@pytest.mark.parametrize("process_name, name", SAMPLED)
def test_chunking_leaves_samples_and_noise_unchanged(process_name, name):
    """Same seed: chunks of 1 and 3 positions give the very samples of the whole-law path (-1), so the uniforms are
    consumed in the same order; a recorded tape replays under chunking too."""
    process = PROCESSES[process_name]()
    den = Tabulated(TOY, process)

    def run(chunk: int, noise=None):
        return generate(den, process, get_sampler(name, chunk_positions=chunk), steps=3, shape=(16, TOY.length),
                        generator=torch.Generator().manual_seed(5), noise=noise)

    reference = run(-1)
    tape = NoiseTape()
    assert torch.equal(run(1, tape), reference)
    assert torch.equal(run(3), reference)
    assert torch.equal(run(1, tape.replay()), reference)
