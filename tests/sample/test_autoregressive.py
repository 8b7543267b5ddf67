"""The autoregressive baseline's left-to-right sampler through the same generate()."""

import pytest
import torch

from dlm.process import Absorbing
from dlm.registry import ConfigError
from dlm.sample import NFECounter, generate, get_sampler
from dlm.sample.exact import total_variation
from tests.sample.helpers import BOS, TOY, causal_oracle, empirical_law, mc_threshold


def bos_prompt(n: int) -> tuple[torch.Tensor, tuple[int, int]]:
    return torch.full((n, 1), BOS), (n, TOY.length + 1)


def test_samples_follow_the_joint_and_take_one_nfe_per_token():
    n = 6000
    prompt, shape = bos_prompt(n)
    counter = NFECounter(causal_oracle)
    x = generate(counter, None, "autoregressive", steps=999, shape=shape, prompt=prompt,
                 generator=torch.Generator().manual_seed(0))
    assert bool((x[:, 0] == BOS).all()) and counter.calls == TOY.length
    assert total_variation(empirical_law(x[:, 1:], 3), TOY.probs) < mc_threshold(TOY.probs, n)


def test_greedy_decoding_follows_the_argmax_chain():
    prompt, shape = bos_prompt(2)
    x = generate(causal_oracle, None, get_sampler("autoregressive", temperature=0.0), steps=1, shape=shape,
                 prompt=prompt)
    chain = [BOS]
    for _ in range(TOY.length):
        chain.append(int(causal_oracle(torch.tensor([chain]), None)[0, -1].argmax()))
    assert x.tolist() == [chain, chain]


def test_autoregressive_errors():
    with pytest.raises(ConfigError, match="BOS"):
        generate(causal_oracle, None, "autoregressive", steps=4, shape=(2, 4))
    with pytest.raises(ConfigError, match="process=None"):
        generate(causal_oracle, Absorbing(3), "autoregressive", steps=4, shape=(2, 4))
