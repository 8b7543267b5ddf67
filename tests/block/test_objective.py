"""The block-diffusion objective (BD3LM): its two-stream forward against a naive per-block loop, its two limits
(block_size = L is masked_elbo, block_size = 1 with the window [1, 1] is the chain rule) and its bad inputs."""

import pytest
import torch

import dlm
from dlm.registry import ConfigError
from dlm.utils.cross_entropy import nll_from_logits
from tests.block.helpers import (
    TINY,
    assert_same_loss_and_gradients,
    tiny_block_model,
    tokens,
    with_random_conditioning,
)


def naive_block_logits(model, xt, x0, t=None):
    """Block k run alone on [x0 blocks < k, x_t block k] under the model's block-causal pattern (positions
    0..(k+1)b-1, the prefix at time 0): the logits of block k, concatenated over k."""
    b, out = model.objective.block_size, []
    for start in range(0, x0.shape[1], b):
        window = torch.cat([x0[:, :start], xt[:, start:start + b]], dim=1)
        times = None if t is None else torch.cat([torch.zeros_like(t[:, :start]), t[:, start:start + b]], dim=1)
        out.append(model.logits(window, times)[:, start:])
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("block_size", [1, 4, 8])
@pytest.mark.parametrize("time_conditioning", [False, True])
def test_two_stream_logits_equal_the_naive_per_block_loop(block_size, time_conditioning):
    # float32 when time-conditioned: the time embedding computes in float32
    model = with_random_conditioning(tiny_block_model(  # random adaLN: t matters
        block_size, f"objective.time_conditioning={str(time_conditioning).lower()}",
        dtype=torch.float32 if time_conditioning else torch.float64))
    objective = model.objective
    x0 = tokens(3)
    t = objective.block_times(3, 16, (0.0, 1.0), generator=torch.Generator().manual_seed(0))
    xt = objective.corrupt(x0, t, generator=torch.Generator().manual_seed(1))
    assert (xt == objective.mask_id).any() and (xt != objective.mask_id).any()
    with torch.no_grad():
        fast = objective.two_stream_logits(model.logits, xt, x0, t)
        naive = naive_block_logits(model, xt, x0, t if time_conditioning else None)
    torch.testing.assert_close(fast, naive, rtol=0, atol=1e-5)


def test_block_size_L_is_masked_elbo_draw_for_draw():
    """One block: the same times, the same x_t and the same loss and gradients as masked_elbo on equal weights."""
    block = tiny_block_model(16).float()
    masked = dlm.DiffusionLM.from_config(dlm.load_config(None, TINY + ["objective.name=masked_elbo"]), vocab_size=9)
    masked.load_state_dict(block.state_dict())
    x0 = tokens(4)
    assert_same_loss_and_gradients(block, masked,
                                   lambda model: model.loss(x0, generator=torch.Generator().manual_seed(7)))


def chain_rule_nll(model, x0):
    """(B,) -log p(x0) of the b = 1 model read as an AR model, one forward per token: position j masked after the
    clean prefix x0[:j]."""
    mask = model.objective.mask_id
    total = torch.zeros(x0.shape[0], dtype=torch.float64)
    for j in range(x0.shape[1]):
        window = torch.cat([x0[:, :j], torch.full_like(x0[:, :1], mask)], dim=1)
        total += nll_from_logits(model.logits(window)[:, -1:], x0[:, j:j + 1], exclude=mask)[:, 0]
    return total


def test_block_size_1_with_window_1_1_is_the_exact_chain_rule_for_every_seed():
    model = tiny_block_model(1, "objective.clip=[1.0,1.0]")
    x0 = tokens(3)
    with torch.no_grad():
        exact = chain_rule_nll(model, x0)
        losses = [model.loss(x0, generator=torch.Generator().manual_seed(s)).loss for s in (0, 1, 2)]
        elbo = model.elbo(x0, n_t=1, generator=torch.Generator().manual_seed(5))
    assert losses[0] == losses[1] == losses[2]
    torch.testing.assert_close(losses[0].double(), exact.sum() / x0.numel(), rtol=1e-6, atol=0)
    torch.testing.assert_close(elbo, exact, rtol=1e-6, atol=0)
    assert model.objective.exact_likelihood


def test_training_times_are_one_per_block_stratified_over_rows_and_blocks():
    objective = tiny_block_model(4, "objective.clip=[0.3,0.8]").objective
    t = objective.block_times(5, 16, objective.clip, generator=torch.Generator().manual_seed(0))
    per_block = t[:, ::4]
    assert torch.equal(t, per_block.repeat_interleave(4, dim=1))
    u = ((per_block.double() - 0.3) / 0.5).reshape(-1)  # back to [0, 1): stratum r holds exactly one draw
    strata = torch.floor(u * 20).long()
    assert torch.equal(strata, torch.arange(20))


@pytest.mark.parametrize("overrides, message", [
    (["objective.block_size=5"], "must divide data.seq_len=16"),
    (["objective.block_size=4", "objective.clip=[1.0,1.0]"], "only for objective.block_size=1"),
    (["objective.block_size=4", "objective.clip=[0.6,0.2]"], "0 <= beta <= omega <= 1"),
])
def test_bad_block_configs_are_one_line_errors(overrides, message):
    cfg = dlm.load_config(None, TINY + ["objective.name=block_diffusion", *overrides])
    with pytest.raises(ConfigError, match=message) as info:
        dlm.DiffusionLM.from_config(cfg, vocab_size=9)
    assert "\n" not in str(info.value)


def test_the_clipped_window_trains_and_the_unbiased_window_reports():
    """With gradients (training) t comes from objective.clip; without (validation) from (0, 1]: the same draws
    on the unbiased window as a model configured without clipping."""
    clipped, plain = tiny_block_model(4, "objective.clip=[0.3,0.8]"), tiny_block_model(4)
    x0 = tokens(4)

    def loss(model, grad):
        with torch.set_grad_enabled(grad):
            return model.loss(x0, generator=torch.Generator().manual_seed(2)).loss.detach()

    assert loss(clipped, False) == loss(plain, False)
    assert loss(clipped, True) != loss(plain, True)
    assert loss(plain, True) == loss(plain, False)


def test_block_size_and_window_survive_save_and_load(tmp_path):
    model = tiny_block_model(8, "objective.clip=[0.3,0.8]")
    model.save_pretrained(str(tmp_path))
    loaded = dlm.DiffusionLM.from_pretrained(str(tmp_path)).objective
    assert (loaded.block_size, loaded.clip, loaded.attention_block) == (8, (0.3, 0.8), 8)


def test_the_conditional_bound_of_a_continuation_at_block_size_1_is_the_chain_rule_of_the_target():
    model = tiny_block_model(1)
    x0 = tokens(3)
    target = torch.zeros(1, 16, dtype=torch.bool)
    target[:, 10:] = True  # a continuation: context 0..9
    mask = model.objective.mask_id
    expected = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        for j in range(10, 16):
            window = torch.cat([x0[:, :j], torch.full_like(x0[:, :1], mask)], dim=1)
            expected += nll_from_logits(model.logits(window)[:, -1:], x0[:, j:j + 1], exclude=mask)[:, 0]
        bound = model.objective.conditional_elbo(model, x0, target)
    torch.testing.assert_close(bound, expected, rtol=1e-6, atol=0)


def test_the_conditional_bound_keeps_the_context_clean_and_unscored():
    model = tiny_block_model(4)
    x0 = tokens(2)
    target = torch.zeros(1, 16, dtype=torch.bool)
    target[:, 10:] = True  # block 2 holds context (8, 9) and target (10, 11)
    seen = []

    class Spy:
        def logits(self, tokens, t, **kwargs):
            seen.append(tokens[:, :16])
            return model.logits(tokens, t, **kwargs)

    with torch.no_grad():
        bound = model.objective.conditional_elbo(Spy(), x0, target, n_t=8, generator=torch.Generator().manual_seed(0))
        full = model.objective.elbo(Spy(), x0, n_t=8, generator=torch.Generator().manual_seed(0))
    noisy = torch.stack(seen)[:8]
    assert torch.equal(noisy[:, :, :10], x0[:, :10].expand(8, -1, -1))  # the context is never masked
    assert (noisy[:, :, 10:] == model.objective.mask_id).any()
    assert (bound < full).all()  # fewer scored tokens
