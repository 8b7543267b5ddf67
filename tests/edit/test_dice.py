"""DICE (arXiv 2410.08207), docs/dice.md, for the absorbing and the uniform process, on exact toys.

Toy: L = 12, V = 7, K = 8. The model's logits are a fixed random linear map of the input token, a context term (the
mean embedding of the whole input), a time term, and optionally copy * onehot(input), so that with copy = 50 the
model copies its clean input (argmax l(x0, 0) = x0) and without it does not.
"""

import pytest
import torch

from dlm.edit import Trace, edit, invert
from dlm.edit.dice import clean_logits
from dlm.process import Absorbing, Uniform
from dlm.registry import ConfigError
from tests.sample.helpers import TOY

L, V, K = 12, 7, 8
PROCESSES = {"absorbing": lambda: Absorbing(V), "uniform": lambda: Uniform(V)}


class LinearToy:
    """(xt, t) -> log_softmax(W[x_d] + mean_j C[x_j] + t b + copy onehot(x_d)), float64 (B, L, N)."""

    def __init__(self, width: int, copy: float = 0.0, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.W, self.C = (torch.randn(width, width, generator=gen, dtype=torch.float64) for _ in range(2))
        self.b = torch.randn(width, generator=gen, dtype=torch.float64)
        self.width, self.copy = width, copy

    def __call__(self, xt, t):
        onehot = torch.nn.functional.one_hot(xt, self.width).double()
        logits = self.W[xt] + self.C[xt].mean(1, keepdim=True) + t.double()[:, None, None] * self.b
        return torch.log_softmax(logits + self.copy * onehot, -1)


def source(batch: int = 16, seed: int = 3) -> torch.Tensor:
    return torch.randint(0, V, (batch, L), generator=torch.Generator().manual_seed(seed))


def replay(denoiser, trace: Trace, **kwargs):
    states = {}
    out = edit(denoiser, trace, on_step=lambda k, x: states.__setitem__(k, x.clone()), **kwargs)
    return out, states


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("target, copy", [("onehot_margin", 0.0), ("onehot_margin", 50.0), ("model", 50.0)])
@pytest.mark.parametrize("residual_dtype", [torch.float32, torch.float16])
def test_reconstruction_replays_every_state_bit_exactly(name, target, copy, residual_dtype):
    process, x0 = PROCESSES[name](), source()
    model = LinearToy(process.width, copy=copy)
    trace = invert(model, process, x0, steps=K, tau=1.0, target=target, residual_dtype=residual_dtype,
                   generator=torch.Generator().manual_seed(0))
    assert bool(trace.masked(K - 1).any()) and not bool(trace.masked(0).any())
    for seed in (1, 2):  # any Gumbel seed: with lambda2 = 0 the noise has no weight
        out, states = replay(model, trace, lambda1=1.0, lambda2=0.0, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(out, x0)
        assert sorted(states) == list(range(K))
        assert all(torch.equal(states[k], trace.state(k - 1)) for k in range(1, K))


@pytest.mark.parametrize("name", PROCESSES)
def test_model_target_needs_the_copy_condition(name):
    """Without the copy term argmax l(x0, 0) != x0 at many positions, so the release's target cannot replay."""
    process, x0 = PROCESSES[name](), source()
    model = LinearToy(process.width, copy=0.0)
    clean = clean_logits(process, model(x0, torch.zeros(len(x0))), x0, torch.zeros(len(x0)))
    assert float((clean.argmax(-1) == x0).double().mean()) < 0.5
    trace = invert(model, process, x0, steps=K, target="model", generator=torch.Generator().manual_seed(0))
    out = edit(model, trace, lambda1=1.0, lambda2=0.0)
    assert float((out == x0).double().mean()) < 0.5


@pytest.mark.parametrize("name", PROCESSES)
def test_lambda1_zero_is_plain_gumbel_max_sampling(name):
    """lambda1 = 0, lambda2 = 1: one edit step draws from softmax(l / T) over the clean tokens (1e5 draws)."""
    process, temperature = PROCESSES[name](), 0.7
    model = LinearToy(process.width, copy=0.0, seed=5)
    one = invert(model, process, source(1), steps=2, temperature=temperature,
                 generator=torch.Generator().manual_seed(4))
    rows = 100_000 // L + 1
    trace = one.select([0] * rows)
    first = {}
    edit(model, trace, lambda1=0.0, lambda2=1.0, generator=torch.Generator().manual_seed(9),
         on_step=lambda k, x: first.setdefault(k, x.clone()))
    draws = first[1][0:rows]  # step k = 1 re-noises M_0 = {} so these are the raw draws
    xt = trace.state(1)[:1]
    t = trace.times[1:].float()
    probs = torch.softmax(model(xt, t)[0, :, :V] / temperature, -1)  # (L, V): clean tokens only
    counts = torch.nn.functional.one_hot(draws, process.width)[..., :V].sum(0).double()  # (L, V)
    expected = probs * rows
    stat = float(((counts - expected) ** 2 / expected).sum())
    dof = L * (V - 1)
    p_value = float(torch.special.gammaincc(torch.tensor(dof / 2.0), torch.tensor(stat / 2.0)))
    assert p_value > 1e-3, (stat, dof)


@pytest.mark.parametrize("name", PROCESSES)
def test_masks_are_nested_and_reach_tau(name):
    process, tau = PROCESSES[name](), 0.6
    x0 = torch.randint(0, V, (4, 5000), generator=torch.Generator().manual_seed(1))
    model = LinearToy(process.width)
    trace = invert(model, process, x0, steps=K, tau=tau, generator=torch.Generator().manual_seed(2))
    for k in range(K - 1):
        assert bool((trace.masked(k) <= trace.masked(k + 1)).all())
    ratios = torch.linspace(0, tau, K)
    for k in range(K):
        fraction = float(trace.masked(k).double().mean())
        sd = (ratios[k] * (1 - ratios[k]) / x0.numel()) ** 0.5
        assert abs(fraction - ratios[k]) <= 5 * sd + 1e-12
    masked = trace.masked(K - 1)
    assert torch.equal(trace.state(K - 1)[~masked], x0[~masked])
    assert torch.equal(trace.state(K - 1)[masked], trace.eta[masked])
    if name == "absorbing":
        assert bool((trace.eta == process.mask_id).all())
    else:  # eta ~ U(V), drawn once
        assert abs(float((trace.eta == 0).double().mean()) - 1 / V) < 0.01


@pytest.mark.parametrize("name", PROCESSES)
def test_positions_outside_the_span_never_change(name):
    process, x0 = PROCESSES[name](), source(8)
    span = torch.zeros(1, L, dtype=torch.bool)
    span[0, 3:9] = True
    trace = invert(LinearToy(process.width, copy=0.0), process, x0, steps=K, tau=0.9, editable=span,
                   generator=torch.Generator().manual_seed(0))
    assert not bool((trace.level[:, ~span[0]] < K).any())  # never masked
    assert trace.residuals.shape == (K, 8 * 6, process.width)
    other = LinearToy(process.width, seed=11)  # the editing denoiser: another "condition"
    out, states = replay(other, trace, lambda1=0.3, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(s[:, ~span[0]], x0[:, ~span[0]]) for s in states.values())
    assert not torch.equal(out[:, span[0]], x0[:, span[0]])  # the edit does act inside the span


@pytest.mark.parametrize("name", PROCESSES)
def test_batch_of_rows_equals_rows_alone_and_seeds_are_deterministic(name):
    process, x0 = PROCESSES[name](), source(5)
    model, other = LinearToy(process.width, copy=0.0), LinearToy(process.width, seed=11)
    trace = invert(model, process, x0, steps=K, tau=0.8, generator=torch.Generator().manual_seed(0))
    again = invert(model, process, x0, steps=K, tau=0.8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(trace.residuals, again.residuals) and torch.equal(trace.level, again.level)
    batched = edit(other, trace, lambda1=0.6, lambda2=0.0)
    for r in range(len(x0)):
        alone = trace.select([r])
        assert torch.equal(alone.source, x0[r:r + 1])
        assert torch.equal(edit(other, alone, lambda1=0.6, lambda2=0.0), batched[r:r + 1])
    noisy = [edit(other, trace, lambda1=0.6, generator=torch.Generator().manual_seed(s)) for s in (3, 3, 4)]
    assert torch.equal(noisy[0], noisy[1]) and not torch.equal(noisy[0], noisy[2])


def test_score_models_go_through_their_x0_probabilities():
    """SEDD's log concrete score -> x0 probabilities: equal to the mean oracle's at masked positions, and the
    reconstruction under the score oracle is exact."""
    process = Absorbing(TOY.vocab)
    mean, score = TOY.denoiser(process), TOY.score_denoiser(process)
    x0 = TOY.states[torch.randint(0, len(TOY.states), (20,), generator=torch.Generator().manual_seed(0))]
    xt = process.corrupt(x0, torch.full((20,), 0.6), generator=torch.Generator().manual_seed(1))
    t = torch.full((20,), 0.6, dtype=torch.float64)
    masked = xt == process.mask_id
    from_score = clean_logits(process, score(xt, t), xt, t)[masked][:, :TOY.vocab]
    from_mean = clean_logits(process, mean(xt, t), xt, t)[masked][:, :TOY.vocab]
    assert torch.allclose(from_score.exp(), from_mean.exp(), atol=1e-9)
    trace = invert(score, process, x0, steps=4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(edit(score, trace, lambda1=1.0, lambda2=0.0), x0)


def test_trace_size_and_bad_settings():
    process, x0 = Absorbing(V), source(4)
    model = LinearToy(process.width)
    full = invert(model, process, x0, steps=K)
    half = invert(model, process, x0, steps=K, residual_dtype=torch.float16)
    assert full.residuals.dtype == torch.float32 and full.residuals.shape == (K, 4 * L, V + 1)
    assert full.nbytes - half.nbytes == K * 4 * L * (V + 1) * 2
    assert full.nbytes >= K * 4 * L * (V + 1) * 4
    for kwargs in ({"target": "modle"}, {"steps": 1}, {"tau": 0.0}, {"temperature": 0.0},
                   {"editable": torch.ones(2, L, dtype=torch.bool)}):
        with pytest.raises(ConfigError):
            invert(model, process, x0, **{"steps": K, **kwargs})
    for kwargs in ({"rule": "mul"}, {"lambda_schedule": "cosine"}, {"lambda1": 1.5}):
        with pytest.raises(ConfigError):
            edit(model, full, **kwargs)


@pytest.mark.parametrize("rule", ["add", "vp", "max"])
@pytest.mark.parametrize("schedule", ["constant", "linear", "exp"])
def test_every_rule_and_schedule_reconstructs_at_lambda1_one(rule, schedule):
    """lambda1 = 1, lambda2 = 0 is the reconstruction under add and vp (sqrt(1) z) with the constant and exp
    schedules (exp stays at 1). The linear schedule decays to 0 and so drifts from x0, and max(z, 0 g) drops the
    negative residuals, so on a model that does not copy it is no reconstruction either."""
    process, x0 = Uniform(V), source()
    model = LinearToy(process.width)
    trace = invert(model, process, x0, steps=K, generator=torch.Generator().manual_seed(0))
    out = edit(model, trace, lambda1=1.0, lambda2=0.0, rule=rule, lambda_schedule=schedule)
    assert torch.equal(out, x0) == (schedule != "linear" and rule != "max")
