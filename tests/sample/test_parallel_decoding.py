"""Adaptive parallel decoding: Fast-dLLM's threshold and factor rules, the entropy-bounded sampler, token editing."""

import itertools

import pytest
import torch

from dlm.process import Absorbing
from dlm.registry import ConfigError
from dlm.sample import NFECounter, generate, get_sampler
from dlm.sample.commit_counts import entropy_bound_counts, factor_counts, threshold_counts

V, L, MASK = 5, 12, 5


class PairwiseDenoiser:
    """A context- and time-dependent toy model whose rows do not interact: the logits at position l are
    base[l] + t C[l] + sum_j E[j, x^j, l], over the 5 clean tokens (the mask gets none)."""

    def __init__(self, seed: int = 0, scale: float = 1.5):
        gen = torch.Generator().manual_seed(seed)
        self.base = scale * torch.randn(L, V, generator=gen, dtype=torch.float64)
        self.time = torch.randn(L, V, generator=gen, dtype=torch.float64)
        self.pair = scale * torch.randn(L, V + 1, L, V, generator=gen, dtype=torch.float64) / 2

    def __call__(self, xt, t):
        n = xt.shape[1]
        pair = self.pair[:n, :, :n]  # (j, token, l, V)
        logits = self.base[:n] + t.double()[:, None, None] * self.time[:n]
        logits = logits + pair[torch.arange(n), xt].sum(1)  # (B, l, V): sum over j of E[j, x^j]
        out = torch.full((*xt.shape, V + 1), float("-inf"), dtype=torch.float64)
        out[..., :V] = torch.log_softmax(logits, -1)
        return out


def fixed_probs(probs: torch.Tensor):
    """A context-free model: x_theta(x0^l) = probs[l] (L', V) at every position, whatever x_t is."""
    log_probs = probs.double().log()

    def denoiser(xt, t):
        out = torch.full((*xt.shape, V + 1), float("-inf"), dtype=torch.float64)
        out[..., :V] = log_probs[: xt.shape[1]]
        return out

    return denoiser


def run(sampler, den=None, *, steps=L, batch=4, prompt_len=3, seed=2, **kwargs):
    """-> (every state generate reports, NFE) for a (batch, L) run with a prompt prefix."""
    den = NFECounter(den or PairwiseDenoiser())
    prompt = torch.randint(0, V, (batch, prompt_len), generator=torch.Generator().manual_seed(1))
    states = []
    generate(den, Absorbing(V), sampler, steps=steps, shape=(batch, L), prompt=prompt,
             generator=torch.Generator().manual_seed(seed), on_step=lambda i, t, x: states.append(x.clone()), **kwargs)
    return states, den.calls


def committed(states):
    """Tokens unmasked by each reported transition, per row: (transitions, B)."""
    return torch.stack([((a == MASK) & (b != MASK)).sum(-1) for a, b in zip(states, states[1:])])


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("block_size", [0, 3])
def test_threshold_above_every_confidence_is_the_one_token_per_step_confidence_sampler(temperature, block_size):
    """No confidence reaches 1.0, so each step commits the single most confident token: the fixed-quota sampler
    at one token per step, token for token, with the same time grid (the toy model reads t) and NFE."""
    options = {"temperature": temperature, "block_size": block_size}
    fixed, fixed_nfe = run(get_sampler("confidence", **options), steps=L - 3)
    adaptive, adaptive_nfe = run(get_sampler("confidence", threshold=1.0, **options))
    assert torch.equal(adaptive[-1], fixed[-1]) and adaptive_nfe == fixed_nfe == L - 3
    assert [torch.equal(a, b) for a, b in zip(adaptive, fixed)] == [True] * len(fixed)


@pytest.mark.parametrize("block_size", [0, 4])
def test_threshold_zero_commits_the_whole_block_in_one_step(block_size):
    states, nfe = run(get_sampler("confidence", threshold=0.0, block_size=block_size))
    blocks = 1 if block_size == 0 else 3  # 9 positions after the prompt
    assert nfe == blocks
    first = committed(states)[0]
    assert first.tolist() == [9 if block_size == 0 else 4] * 4


def test_factor_rule_counts():
    """The reference-code vectors (docs/samplers.md#fast-decoding), f = 1, by the intended rule: the largest n with
    (n + 1)(1 - c_(n)) <= 1. (0.99, 0.98, 0.2): 0.02, 0.06, 3.2 -> 2; (0.9, 0.3): 0.2, 2.1 -> 1;
    (0.99, 0.98, 0.97, 0.2, 0.1): 0.02, 0.06, 0.12, 4.0 -> 3. (Fast-dLLM's loop gives 3, 2, 3.)"""
    vectors = [[0.99, 0.98, 0.2], [0.9, 0.3], [0.99, 0.98, 0.97, 0.2, 0.1]]
    ordered = torch.full((3, 5), float("-inf"), dtype=torch.float64)
    for row, c in enumerate(vectors):
        ordered[row, :len(c)] = torch.tensor(c, dtype=torch.float64)
    assert factor_counts(ordered, 1.0).tolist() == [2, 1, 3]
    assert factor_counts(ordered, 2.5).tolist() == [2, 2, 3]  # a larger factor admits (0.9, 0.3)'s second
    assert threshold_counts(ordered, 0.98).tolist() == [2, 0, 2]  # ties at the threshold are kept


@pytest.mark.parametrize("vector, k", [([0.99, 0.98, 0.2], 2), ([0.9, 0.3], 1), ([0.99, 0.98, 0.97, 0.2, 0.1], 3),
                                       ([0.6, 0.55], 1)])
def test_factor_rule_in_the_sampler(vector, k):
    """Greedy confidences c = the vector (the rest of each row's mass spread evenly): the first step commits k.
    (0.6, 0.55): 2 x 0.4 <= 1 but 3 x 0.45 > 1."""
    probs = torch.stack([torch.tensor([c] + [(1 - c) / (V - 1)] * (V - 1)) for c in vector])
    states, _ = run_fixed(probs, "confidence", factor=1.0, temperature=0.0)
    assert committed(states)[0].tolist() == [k] and int((states[-1] == MASK).sum()) == 0


def run_fixed(probs, name, **options):
    """-> (states, NFE) of one unprompted row of len(probs) positions under fixed_probs(probs)."""
    den = NFECounter(fixed_probs(probs))
    states = []
    generate(den, Absorbing(V), get_sampler(name, **options), steps=1, shape=(1, len(probs)),
             on_step=lambda i, t, x: states.append(x.clone()), generator=torch.Generator().manual_seed(0))
    return states, den.calls


def test_positions_outside_the_block_are_never_committed():
    """Every position is certain (confidence 1.0) and threshold 0, yet each step commits only its own block."""
    probs = torch.full((L, V), 0.0).index_fill(1, torch.tensor([2]), 1.0)
    states, nfe = run(get_sampler("confidence", threshold=0.0, block_size=4), fixed_probs(probs), prompt_len=3)
    for x in states[1:]:
        decoded = (x[:, 3:] != MASK).sum(-1)
        assert bool((decoded % 4 == 0).all() | (decoded == 9).all())  # whole blocks of 4 (the last holds 1)
    assert nfe == 3 and committed(states).flatten().max() == 4


@pytest.mark.parametrize("options", [{"threshold": 0.5}, {"factor": 1.0}, {"threshold": 0.5, "block_size": 3},
                                     {"gamma": 0.3, "name": "entropy_bounded"}])
def test_rows_progress_independently(options):
    """Greedy, a model whose rows do not interact: a row decodes the same alone and in a batch of 8, although the
    rows commit different numbers of tokens per step."""
    options = dict(options)
    name = options.pop("name", "confidence")
    sampler = get_sampler(name, temperature=0.0, **options)
    prompt = torch.randint(0, V, (8, 3), generator=torch.Generator().manual_seed(5))

    def decode(rows):
        return generate(PairwiseDenoiser(), Absorbing(V), sampler, steps=L, shape=(len(rows), L),
                        prompt=prompt[rows])

    batched = decode(list(range(8)))
    alone = torch.cat([decode([r]) for r in range(8)])
    assert torch.equal(batched, alone)
    states, _ = run(sampler, batch=8)
    per_step = committed(states)
    assert bool((per_step != per_step[:, :1]).any()), "every row committed alike: the test cannot see progress"


def test_threshold_and_factor_need_no_steps_budget_and_skip_idle_calls():
    """The block runs until it has no mask, whatever `steps` says, and steps with nothing left cost no NFE."""
    sampler = get_sampler("confidence", threshold=0.7, temperature=0.0)
    a, nfe_a = run(sampler, steps=1)
    b, nfe_b = run(sampler, steps=64)
    assert torch.equal(a[-1], b[-1]) and nfe_a == nfe_b
    assert int((a[-1] == MASK).sum()) == 0
    assert nfe_a == max(int((committed(a) > 0).sum(0).max()), 1) < L - 3


def test_options_are_checked():
    with pytest.raises(ConfigError, match="not both"):
        get_sampler("confidence", threshold=0.9, factor=1.0)
    with pytest.raises(ConfigError, match="edit_threshold"):
        get_sampler("confidence", edit_threshold=1.5)
    with pytest.raises(ConfigError, match="gamma"):
        get_sampler("entropy_bounded", gamma=-1.0)
    with pytest.raises(ConfigError, match="proxy"):
        get_sampler("entropy_bounded", proxy="variance")


# --- entropy-bounded ---------------------------------------------------------------------------------------------
def test_entropy_bound_counts_match_brute_force():
    """Random entropy vectors: the count is the largest k with S_k - M_k <= gamma (checked by enumeration), and a
    larger gamma never gives a smaller k."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        n = int(torch.randint(1, 9, (1,), generator=gen))
        h = torch.rand(n, generator=gen, dtype=torch.float64) * torch.rand(1, generator=gen, dtype=torch.float64)
        h[torch.rand(n, generator=gen) < 0.2] = 0.0
        gammas = sorted(torch.rand(3, generator=gen, dtype=torch.float64).mul(0.6).tolist())
        counts = [int(entropy_bound_counts(h[None], g)[0]) for g in gammas]
        for g, k in zip(gammas, counts):
            brute = max(k for k in range(n + 1) if float(h[:k].sum() - (h[:k].max() if k else 0)) <= g)
            assert k == brute
        assert counts == sorted(counts)


def test_entropy_bound_zero_commits_one_token_per_step():
    """All entropies > 0 and gamma = 0: one token per step, NFE = the number of masks."""
    states, nfe = run(get_sampler("entropy_bounded", gamma=0.0))
    assert nfe == L - 3
    assert committed(states)[:L - 3].tolist() == [[1] * 4] * (L - 3)


def test_entropy_bound_commits_one_hot_rows_at_once():
    """Zero-entropy rows (one-hot x_theta) cost nothing in S_k - M_k, so even at gamma = 0 the first step commits
    them all, plus the lowest-entropy uncertain one (the newest token's entropy is M_k, not counted); the last
    uncertain one follows alone."""
    probs = torch.full((6, V), 0.0).index_fill(1, torch.tensor([1]), 1.0)
    probs[4] = torch.tensor([0.7, 0.1, 0.1, 0.05, 0.05])
    probs[5] = torch.full((V,), 0.2)
    states, nfe = run_fixed(probs, "entropy_bounded", gamma=0.0)
    assert nfe == 2
    assert (states[1][0] != MASK).tolist() == [True] * 5 + [False]


@pytest.mark.parametrize("proxy", ["entropy", "confidence", "margin"])
def test_entropy_bound_proxies_rank_positions(proxy):
    """Position 0: (0.5, 0.5, 0, 0, 0), low entropy, top 0.5, margin 0; position 1: (0.45, 0.1 x 4): higher
    entropy, top 0.45, margin 0.35; gamma 0 commits the one each proxy ranks first."""
    probs = torch.tensor([[0.5, 0.5, 1e-300, 1e-300, 1e-300], [0.6, 0.1, 0.1, 0.1, 0.1]])
    states, _ = run_fixed(probs, "entropy_bounded", gamma=0.0, proxy=proxy, temperature=0.0)
    first = {"entropy": 0, "confidence": 1, "margin": 1}[proxy]
    assert (states[1][0] != MASK).nonzero().flatten().tolist() == [first]


# --- token editing -----------------------------------------------------------------------------------------------
class Contrarian:
    """Predicts every position: PairwiseDenoiser's law at a mask, and at a decoded token x mass `mass` on x + shift
    (mod V), the rest spread evenly. shift 1: a model that wants to edit; shift 0 and mass 1: SUBS's carry-over."""

    def __init__(self, mass: float = 1.0, shift: int = 1):
        self.inner, self.mass, self.shift = PairwiseDenoiser(), mass, shift

    def __call__(self, xt, t):
        out = self.inner(xt, t)
        rest = torch.tensor((1 - self.mass) / (V - 1), dtype=torch.float64).log()
        decoded = torch.full((*xt.shape, V + 1), float("-inf"), dtype=torch.float64)
        decoded[..., :V] = rest
        decoded.scatter_(-1, ((xt + self.shift) % V).unsqueeze(-1), torch.tensor(self.mass).log().item())
        return torch.where((xt != MASK).unsqueeze(-1), decoded, out)


def test_token_editing_never_edits_at_threshold_one():
    """x_theta(other token) = 1.0 exactly at every decoded position: edit_threshold 1 (the default) changes nothing
    and adds no step; any threshold below edits."""
    base, base_nfe = run(get_sampler("confidence", threshold=0.6), Contrarian())
    same, same_nfe = run(get_sampler("confidence", threshold=0.6, edit_threshold=1.0), Contrarian())
    assert torch.equal(base[-1], same[-1]) and base_nfe == same_nfe and len(base) == len(same)
    edited, edited_nfe = run(get_sampler("confidence", threshold=0.6, edit_threshold=0.99, edit_steps=3), Contrarian())
    assert not torch.equal(edited[-1], base[-1]) and edited_nfe == base_nfe + 3
    assert torch.equal(edited[-1][:, :3], base[-1][:, :3])  # the prompt is never edited


def test_token_editing_replaces_confident_disagreements_only():
    """mass 0.8 on another token: edited at edit_threshold 0.75, never at 0.85."""
    kept, nfe = run(get_sampler("confidence", factor=1.0, edit_threshold=0.85, edit_steps=2), Contrarian(0.8))
    plain, plain_nfe = run(get_sampler("confidence", factor=1.0), Contrarian(0.8))
    assert torch.equal(kept[-1], plain[-1]) and nfe == plain_nfe + 1  # one edit call, which changes nothing
    edited, _ = run(get_sampler("confidence", factor=1.0, edit_threshold=0.75, edit_steps=2), Contrarian(0.8))
    assert bool((edited[-1][:, 3:] != plain[-1][:, 3:]).any())


def test_token_editing_stops_per_row_when_nothing_changes():
    """A model that agrees with every decoded token (SUBS carry-over): one extra call per block finds nothing to
    edit, and each row stops there."""
    sampler = get_sampler("confidence", threshold=0.5, edit_threshold=0.5, edit_steps=5, block_size=3)
    edited, nfe = run(sampler, Contrarian(shift=0))
    plain, plain_nfe = run(get_sampler("confidence", threshold=0.5, block_size=3), Contrarian(shift=0))
    assert torch.equal(edited[-1], plain[-1]) and nfe == plain_nfe + 3


def test_subs_models_never_edit():
    """Our masked models carry decoded tokens over (SUBS), so editing cannot fire with them."""
    from tests.tiny_models import tiny_model

    torch.manual_seed(0)
    model = tiny_model("masked_elbo").eval()
    shape = (2, 16)
    with torch.no_grad():
        plain = generate(model, model.process, get_sampler("confidence", threshold=0.3), steps=16, shape=shape,
                         generator=torch.Generator().manual_seed(0))
        edited = generate(model, model.process, get_sampler("confidence", threshold=0.3, edit_threshold=0.0),
                          steps=16, shape=shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(plain, edited)


def test_fixed_quota_with_editing_keeps_the_quota():
    """With a fixed quota, editing appends its calls after the block's steps: the commits are unchanged."""
    plain, _ = run(get_sampler("confidence", temperature=0.0), steps=3)
    edited, _ = run(get_sampler("confidence", temperature=0.0, edit_threshold=0.99, edit_steps=2), steps=3)
    assert committed(plain)[:3].tolist() == committed(edited)[:3].tolist() == [[3] * 4] * 3
    assert list(itertools.chain(committed(edited)[3:].flatten().tolist())) == [0] * 12


@pytest.mark.parametrize("cache", ["prefix", "dual", "dkv_decode", "dkv_greedy"])
def test_threshold_decoding_runs_through_every_cache(cache):
    """Block by block (semi-AR): with a full refresh at every call each policy gives the uncached logits, so the same
    tokens and NFE as without a cache; with its own refresh rule it decodes everything on fewer backbone tokens
    than full calls would take."""
    from dlm.cache import get_cache
    from tests.cache.helpers import TokenCounter, tiny_model

    model = tiny_model(sharpen=4.0)
    sampler = get_sampler("confidence", temperature=0.0, factor=3.5, block_size=4)
    runs = []
    for policy in (None, get_cache(cache, refresh_every=1), get_cache(cache)):
        counter, tokens = NFECounter(model), TokenCounter(model)
        with torch.no_grad():
            x = generate(counter, model.process, sampler, steps=1, shape=(3, 14), cache=policy,
                         prompt=torch.tensor([[1, 2]]))
        runs.append((x, counter.calls, tokens.close()))
    (plain, nfe, _), (exact, exact_nfe, _), (cached, cached_nfe, work) = runs
    assert torch.equal(plain, exact) and nfe == exact_nfe < 12
    assert int((cached == model.process.mask_id).sum()) == 0 and work < cached_nfe * 3 * 14
