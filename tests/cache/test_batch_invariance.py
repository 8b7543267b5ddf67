"""A row's tokens do not depend on its batch: batch sizes 1 (alone, unpadded), 3 and 8 (right-padded, with an
attention mask) give the same tokens, with and without each cache policy, for greedy decoding and for sampling with
one generator per row."""

import pytest
import torch

from dlm.sample import generate, get_sampler
from tests.cache.helpers import prompt_batch, tiny_ar, tiny_model

PROMPTS = [2, 7, 4, 9, 3, 6, 5, 8]
VARIED = [12, 5, 9, 14, 7, 10, 6, 11]  # new tokens per row (different total lengths: padding)
SAME = [12] * 8  # semi-AR blocks need the same number of blocks per row

CONFIGS = {
    "greedy": (get_sampler("confidence", temperature=0.0), VARIED, 14, False),
    "greedy_blocks": (get_sampler("confidence", temperature=0.0, block_size=4), SAME, 12, False),
    "ancestral_t1": (get_sampler("ancestral"), VARIED, 10, True),
    "random_remask_blocks": (get_sampler("confidence", temperature=0.7, remasking="random", block_size=4), SAME, 12,
                             True),
    # rows commit different numbers of tokens per step (adaptive rules) or return tokens to the mask (remdm)
    "threshold": (get_sampler("confidence", temperature=0.0, threshold=0.28), VARIED, 14, False),
    "factor_blocks": (get_sampler("confidence", temperature=0.7, factor=3.5, block_size=4), SAME, 12, True),
    "entropy_bounded": (get_sampler("entropy_bounded", temperature=0.0, gamma=2.5), VARIED, 14, False),
    "remdm_blocks": (get_sampler("remdm", eta=0.2, block_size=4), SAME, 12, True),
}


def decode(model, rows, config, cache):
    """Decode `rows` of the 8-row layout as one batch -> each row's tokens, unpadded."""
    sampler, new, steps, per_row = config
    tokens, prompt_mask, attention_mask = prompt_batch(PROMPTS, new)
    totals = [PROMPTS[r] + new[r] for r in rows]
    cut = slice(None, max(totals))
    padding = attention_mask[rows, cut] if len(rows) > 1 else None
    generator = [torch.Generator().manual_seed(100 + r) for r in rows] if per_row else None
    out = generate(model, model.process, sampler, steps=steps, prompt=tokens[rows, cut],
                   prompt_mask=prompt_mask[rows, cut], attention_mask=padding, generator=generator, cache=cache)
    return [row[:total] for row, total in zip(out, totals)]


@pytest.mark.parametrize("cache", [None, "dkv_decode", "dkv_decode:block_only=0",
                                   "dkv_decode:refresh_at_block=0", "dkv_greedy", "prefix", "dual"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_tokens_do_not_depend_on_the_batch(name, cache):
    model = tiny_model(sharpen=4.0)
    config = CONFIGS[name]
    if cache == "dkv_decode":  # refresh inside the run too
        from dlm.cache import DKVDecode

        cache = DKVDecode(refresh_every=3)
    with torch.no_grad():
        alone = [decode(model, [r], config, cache)[0] for r in range(8)]
        for size in (3, 8):
            batched = decode(model, list(range(size)), config, cache)
            for r in range(size):
                assert torch.equal(batched[r], alone[r]), f"row {r} differs in a batch of {size}"


def test_autoregressive_rows_do_not_depend_on_the_batch():
    """AR with its default KV cache, right-padded rows of different lengths, one generator per row."""
    model = tiny_ar(sharpen=4.0)
    sampler = get_sampler("autoregressive", temperature=1.0)
    tokens, prompt_mask, attention_mask = prompt_batch(PROMPTS, VARIED)

    def run(rows):
        totals = [PROMPTS[r] + VARIED[r] for r in rows]
        cut = slice(None, max(totals))
        out = generate(model, None, sampler, steps=1, prompt=tokens[rows, cut], prompt_mask=prompt_mask[rows, cut],
                       attention_mask=attention_mask[rows, cut] if len(rows) > 1 else None,
                       generator=[torch.Generator().manual_seed(7 + r) for r in rows])
        return [row[:total] for row, total in zip(out, totals)]

    with torch.no_grad():
        alone = [run([r])[0] for r in range(8)]
        batched = run(list(range(8)))
    assert all(torch.equal(a, b) for a, b in zip(alone, batched))
