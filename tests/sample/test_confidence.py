"""Confidence remasking (LLaDA, MaskGIT) and semi-autoregressive blocks: quotas, block order, which goes first."""

import pytest
import torch

from dlm.process import Absorbing, Uniform
from dlm.registry import ConfigError
from dlm.sample import generate, get_sampler, num_transfer_tokens

V, L, MASK = 5, 12, 5


def factorized(logits: torch.Tensor):
    """A context-free model: x_theta(x0^l) = softmax(logits[l]) at every position, (L, V) logits."""
    log_probs = torch.log_softmax(logits.double(), -1)

    def denoiser(xt, t):
        out = torch.full((*xt.shape, V + 1), -1e6, dtype=torch.float64)
        out[..., :V] = log_probs[: xt.shape[1]]
        return out

    return denoiser


def record(name, steps, *, prompt_len=3, **options):
    """Generate with a 3-token prompt prefix on a (4, 12) batch and keep every state."""
    den = factorized(torch.randn(L, V, generator=torch.Generator().manual_seed(0)))
    prompt = torch.randint(0, V, (4, prompt_len), generator=torch.Generator().manual_seed(1))
    states = []
    x = generate(den, Absorbing(V), get_sampler(name, **options), steps=steps, shape=(4, L), prompt=prompt,
                 generator=torch.Generator().manual_seed(2), on_step=lambda i, t, xt: states.append(xt.clone()))
    assert torch.equal(x[:, :prompt_len], prompt) and int(x.max()) < V
    return states


def test_num_transfer_tokens_matches_llada():
    masked = torch.tensor([0, 1, 7, 10, 32])
    quota = num_transfer_tokens(masked, 4)
    assert torch.equal(quota.sum(-1), masked)
    for n, row in zip(masked.tolist(), quota.tolist()):  # k_i = floor(n / S) + 1[i < n mod S]
        assert row == [n // 4 + (i < n % 4) for i in range(4)]


@pytest.mark.parametrize("name, options", [("confidence", {}), ("confidence", {"remasking": "margin"}),
                                           ("confidence", {"remasking": "random", "temperature": 0.5}),
                                           ("ancestral", {}), ("tau_leaping", {})])
def test_blocks_decode_in_order(name, options):
    """block_size 4 after a 3-token prompt: blocks [3,7), [7,11), [11,12); a block only starts once the one before
    it is complete, and the confidence quotas per block are LLaDA's (2, 2), (2, 2), (1, 0)."""
    states = record(name, 6, block_size=4, **options)
    blocks = [(3, 7), (7, 11), (11, 12)]
    for x in states:
        masked = [(x[:, a:b] == MASK).any(-1) for a, b in blocks]
        untouched = [(x[:, a:b] == MASK).all(-1) for a, b in blocks]
        for k in range(len(blocks) - 1):
            assert bool((~masked[k] | untouched[k + 1]).all()), "a later block moved before an earlier one finished"
    if name == "confidence":
        decoded = [int(((a == MASK) & (b != MASK)).sum(-1).unique().item()) for a, b in zip(states, states[1:])]
        # per block: its steps, then the noise-removal frame (nothing left to do)
        assert decoded == [2, 2, 0, 2, 2, 0, 1, 0, 0]
        assert sum(decoded[0:3]) == sum(decoded[3:6]) == 4 and sum(decoded[6:9]) == 1


def test_confidence_without_blocks_decodes_the_quota_each_step():
    states = record("confidence", 4)
    decoded = [int(((a == MASK) & (b != MASK)).sum(-1).unique().item()) for a, b in zip(states, states[1:])]
    assert decoded == [3, 2, 2, 2, 0]  # 9 masks over 4 steps, then an idle noise removal


@pytest.mark.parametrize("remasking, first", [("max_prob", 0), ("margin", 1), ("entropy", 0)])
def test_confidence_measures_pick_the_expected_position(remasking, first):
    """Position 0: (0.5, 0.5, 0, 0, 0), max 0.5, margin 0, low entropy; position 1: (0.4, 0.15 x 4), max 0.4,
    margin 0.25, high entropy; position 2: uniform, never first."""
    probs = torch.tensor([[0.5, 0.5, 1e-9, 1e-9, 1e-9], [0.4, 0.15, 0.15, 0.15, 0.15], [0.2] * 5])
    den = factorized(probs.log())
    states = []
    generate(den, Absorbing(V), get_sampler("confidence", remasking=remasking, temperature=0.0), steps=3,
             shape=(1, 3), on_step=lambda i, t, xt: states.append(xt.clone()))
    assert (states[1][0] != MASK).nonzero().flatten().tolist() == [first]


def test_confidence_needs_a_masked_process():
    with pytest.raises(ConfigError, match="supports processes") as error:
        generate(lambda xt, t: None, Uniform(V), "confidence", steps=4, shape=(1, 4))
    usable = str(error.value).split("choose a sampler for it: ")[1].split(", ")
    assert "analytic" in usable and "ancestral" in usable and "confidence" not in usable  # the ones that run on it
    with pytest.raises(ConfigError, match="remasking"):
        get_sampler("confidence", remasking="low_confidence")
    with pytest.raises(ConfigError, match="multiple"):
        generate(factorized(torch.zeros(L, V)), Absorbing(V), get_sampler("confidence", block_size=5), steps=4,
                 shape=(1, L))
