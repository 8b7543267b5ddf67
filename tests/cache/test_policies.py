"""Cache policies: refresh-every-step reproduces the uncached logits; partial recomputation is exact where the
stored keys/values are current; the policies save work; the AR KV cache reproduces uncached decoding."""

import pytest
import torch

from dlm.cache import CachePolicy, get_cache
from dlm.registry import CACHES, ConfigError
from dlm.sample import generate, get_sampler
from tests.cache.helpers import TokenCounter, V, prompt_batch, tiny_ar, tiny_model

GREEDY = get_sampler("confidence", temperature=0.0)
BLOCKS = get_sampler("confidence", temperature=0.0, block_size=6)


def masked_setup(sharpen: float = 4.0):
    model = tiny_model(sharpen=sharpen)
    tokens, prompt_mask, attention_mask = prompt_batch([5, 8, 3], [24, 24, 24])
    return model, dict(prompt=tokens, prompt_mask=prompt_mask, attention_mask=attention_mask)


class Checked:
    """A denoiser that answers with the cached call and checks it against the uncached one at every call."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, xt, t, cache=None, attention_mask=None):
        cached = self.model(xt, t, cache=cache, attention_mask=attention_mask)
        plain = self.model(xt, t, attention_mask=attention_mask)
        real = slice(None) if attention_mask is None else attention_mask
        torch.testing.assert_close(cached.log_probs[real], plain.log_probs[real], rtol=0, atol=1e-5)
        self.calls += 1
        return cached


@pytest.mark.parametrize("name", [*sorted(CACHES), "dkv_decode:block_only=0", "dkv_decode:refresh_at_block=0"])
def test_refresh_every_step_reproduces_uncached_logits(name):
    policy = get_cache(name, refresh_every=1)
    if name == "append":
        model = tiny_ar(sharpen=4.0)
        checked = Checked(model)
        generate(checked, None, get_sampler("autoregressive", temperature=1.0), steps=1, shape=(3, 20),
                 prompt=torch.zeros(3, 2, dtype=torch.long), generator=torch.Generator().manual_seed(0), cache=policy)
        assert checked.calls == 18
        return
    model, prompt = masked_setup()
    for sampler in (GREEDY, BLOCKS):
        checked = Checked(model)
        generate(checked, model.process, sampler, steps=12, cache=policy, **prompt)
        assert checked.calls == 12


@pytest.mark.parametrize("sampler", [GREEDY, BLOCKS], ids=["whole", "blocks"])
@pytest.mark.parametrize("sharpen", [1.0, 4.0])
def test_dkv_decode_with_refresh_1_gives_the_uncached_tokens(sampler, sharpen):
    model, prompt = masked_setup(sharpen)
    plain = generate(model, model.process, sampler, steps=12, **prompt)
    cached = generate(model, model.process, sampler, steps=12, cache=get_cache("dkv_decode", refresh_every=1),
                      **prompt)
    assert torch.equal(plain, cached)


class RandomSubset(CachePolicy):
    """Recompute a random subset of each row (different sizes per row); everything stays readable."""

    def select(self, xt):
        return torch.rand(xt.shape, generator=torch.Generator().manual_seed(self.calls)) < 0.3

    def commit(self, xt, recomputed):
        self.store.valid[:, :xt.shape[1]] = True


MODELS = {"masked": lambda: tiny_model(sharpen=4.0), "padded": lambda: tiny_model(sharpen=4.0),
          "autoregressive": lambda: tiny_ar(sharpen=4.0),
          "sedd": lambda: tiny_model("objective.name=score_entropy", "objective.time_conditioning=true", sharpen=4.0)}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_partial_recompute_on_an_unchanged_input_is_exact(kind):
    """After a full call on xt, a call on the same xt recomputing any subset reads current keys/values only, so the
    gathered queries, per-row positions, scratch padding, time conditioning and scatter must give the uncached
    prediction."""
    model = MODELS[kind]()
    xt = torch.randint(0, V + (kind != "autoregressive"), (4, 30), generator=torch.Generator().manual_seed(1))
    t = None if kind == "autoregressive" else torch.tensor([0.2, 0.5, 0.7, 0.9])
    padding = (torch.arange(30)[None] < torch.tensor([30, 17, 24, 9])[:, None]) if kind == "padded" else None
    policy = RandomSubset()
    policy.reset()
    rows = slice(None) if padding is None else padding
    with torch.no_grad():
        plain = model(xt, t, attention_mask=padding)
        for _ in range(3):
            cached = model(xt, t, cache=policy, attention_mask=padding)
            for name in ("log_probs", "log_score"):
                if getattr(plain, name) is not None:
                    torch.testing.assert_close(getattr(cached, name)[rows], getattr(plain, name)[rows], rtol=0,
                                               atol=1e-5)
    assert policy.calls == 3


@pytest.mark.parametrize("name, sampler, most", [("dkv_decode", GREEDY, 0.6), ("dkv_greedy", GREEDY, 0.5),
                                                 ("prefix", BLOCKS, 0.7), ("dual", BLOCKS, 0.5),
                                                 ("dkv_decode", BLOCKS, 0.5),
                                                 ("dkv_decode:refresh_at_block=0", BLOCKS, 0.4)])
def test_policies_run_fewer_tokens(name, sampler, most):
    """Backbone query tokens against the uncached run (12 calls x 3 rows x 32 positions)."""
    model, prompt = masked_setup()
    counts = {}
    for key, cache in (("plain", None), ("cached", name)):
        counter = TokenCounter(model)
        generate(model, model.process, sampler, steps=12, cache=cache, **prompt)
        counts[key] = counter.close()
    assert counts["cached"] < most * counts["plain"]


def test_dkv_decode_block_only_recomputes_inside_the_block():
    """Between full forwards, block_only recomputes the block's masks and the tokens decoded at the last step (all
    inside the block), and nothing else; the default recomputes every mask of the row, later blocks included."""
    model, prompt = masked_setup()
    seen = {}
    for block_only in (False, True):
        policy = get_cache("dkv_decode", block_only=block_only)
        outside, select = [], policy.select

        def spy(xt, policy=policy, outside=outside, select=select):
            recompute = select(xt)
            outside.append(int((recompute & ~policy.editable[:, :xt.shape[1]]).sum()))
            return recompute

        policy.select = spy
        generate(model, model.process, BLOCKS, steps=12, cache=policy, **prompt)
        seen[block_only] = outside
    assert seen[True] and not any(seen[True])
    assert sum(seen[False]) > 0


@pytest.mark.parametrize("refresh_every, full_calls", [(0, 1), (5, 3)])
def test_dkv_decode_without_block_refresh_counts_calls_over_the_run(refresh_every, full_calls):
    """refresh_at_block=False: full forwards at calls 0, k, 2k, ... of the whole run (12 calls over 4 blocks of 6),
    not at every block start (4 of them with the default)."""
    model, prompt = masked_setup()
    counts = {}
    for at_block in (True, False):
        policy = get_cache("dkv_decode", refresh_every=refresh_every, block_only=True, refresh_at_block=at_block)
        full, calls = policy._full, []
        policy._full = lambda *args, full=full, calls=calls: calls.append(1) or full(*args)
        generate(model, model.process, BLOCKS, steps=12, cache=policy, **prompt)
        counts[at_block] = len(calls)
    assert counts == {True: 4, False: full_calls}


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_autoregressive_kv_cache_is_exact_and_linear(temperature):
    """The AR sampler attaches the append cache to a DiffusionLM by default: the same tokens as re-reading the
    prefix, with L - 1 forward tokens per row instead of L (L - 1) / 2; copied prompt tokens are read in chunks."""
    model = tiny_ar(sharpen=4.0)
    prompt = torch.randint(0, V, (3, 40), generator=torch.Generator().manual_seed(2))
    known = torch.zeros(3, 40, dtype=torch.bool)
    known[:, :4] = True
    known[:, 20:23] = True  # copied in when reached
    out, tokens = {}, {}
    for kv_cache in (False, True):
        counter = TokenCounter(model)
        out[kv_cache] = generate(model, None, get_sampler("autoregressive", temperature=temperature,
                                                          kv_cache=kv_cache),
                                 steps=1, prompt=prompt, prompt_mask=known, generator=torch.Generator().manual_seed(3))
        tokens[kv_cache] = counter.close()
    assert torch.equal(out[False], out[True])
    assert tokens[True] == 3 * 39 and tokens[False] > 10 * tokens[True]


def test_cache_errors():
    model, prompt = masked_setup()
    with pytest.raises(ConfigError, match="unknown cache policy"):
        generate(model, model.process, GREEDY, steps=4, cache="dkv", **prompt)
    with pytest.raises(ConfigError, match="subsets of rows"):
        generate(model, model.process, "ancestral_cache", steps=4, cache="dkv_decode", **prompt)
    with pytest.raises(ConfigError, match="autoregressive KV cache"):
        generate(model, model.process, GREEDY, steps=4, cache="append", **prompt)
    with pytest.raises(ConfigError, match="masked"):
        generate(tiny_ar(), None, "autoregressive", steps=1, shape=(1, 5), prompt=torch.zeros(1, 1).long(),
                 cache="dkv_decode")
    uniform = tiny_model("process.name=uniform", "objective.name=uniform_elbo", "objective.time_conditioning=true")
    with pytest.raises(ConfigError, match="masked"):
        generate(uniform, uniform.process, "ancestral", steps=4, shape=(1, 5), cache="prefix")
    policy = get_cache("dkv_decode")
    with torch.no_grad():
        model(torch.full((2, 6), V), cache=policy)
        with pytest.raises(ConfigError, match="one batch"):
            model(torch.full((3, 6), V), cache=policy)
    with pytest.raises(ConfigError, match="refresh_every"):
        get_cache("dkv_decode", refresh_every=-1)


def test_get_cache_reads_options_from_the_name_as_the_cli_gives_them():
    from dlm.cache import DKVGreedy, get_cache
    from dlm.registry import ConfigError

    policy = get_cache("dkv_greedy:refresh_every=8,window=3")
    assert isinstance(policy, DKVGreedy) and (policy.refresh_every, policy.window) == (8, 3)
    assert get_cache("dkv_decode").refresh_every == 16
    with pytest.raises(ConfigError, match="has no option 'windw'; options: refresh_every, window"):
        get_cache("dkv_greedy:windw=3")
    with pytest.raises(ConfigError, match="must be key=<integer>"):
        get_cache("dkv_decode:refresh_every=often")
