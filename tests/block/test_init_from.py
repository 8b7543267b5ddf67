"""train.init_from: an MDLM or an autoregressive checkpoint of the same backbone starts a block-diffusion run;
anything else is a one-line error."""

import dataclasses

import pytest
import torch

import dlm
from dlm.cache.block import BlockCache
from dlm.data import tokenizer_from_config
from dlm.objectives.masked_elbo import subs
from dlm.registry import ConfigError
from dlm.train.init_from import init_from
from dlm.train.loop import train
from tests.block.helpers import TINY

VOCAB = 9


def build(*overrides: str, seed: int = 0) -> dlm.DiffusionLM:
    torch.manual_seed(seed)
    return dlm.DiffusionLM.from_config(dlm.load_config(None, TINY + list(overrides)), vocab_size=VOCAB)


def saved(tmp_path, *overrides: str):
    model = build(*overrides, seed=1)
    model.save_pretrained(str(tmp_path / "source"))
    return model, tmp_path / "source"


def test_an_mdlm_checkpoint_starts_a_block_model_with_every_weight(tmp_path):
    source, path = saved(tmp_path, "objective.name=masked_elbo")
    block = build("objective.name=block_diffusion", "objective.block_size=4")
    init_from(block, path)
    for (name, ours), theirs in zip(block.state_dict().items(), source.state_dict().values()):
        assert torch.equal(ours, theirs), name


def test_an_autoregressive_checkpoint_gives_its_token_rows_and_the_mask_row_stays_fresh(tmp_path):
    source, path = saved(tmp_path, "objective.name=autoregressive")
    block = build("objective.name=block_diffusion", "objective.block_size=4")
    fresh = {name: value.clone() for name, value in block.state_dict().items()}
    init_from(block, path)
    ours, theirs = block.state_dict(), source.state_dict()
    for name in ("backbone.embed.weight", "backbone.head.weight", "backbone.head.bias"):
        assert torch.equal(ours[name][:VOCAB], theirs[name]) and torch.equal(ours[name][VOCAB:], fresh[name][VOCAB:])
    assert torch.equal(ours["backbone.blocks.0.attn.qkv.weight"], theirs["backbone.blocks.0.attn.qkv.weight"])


@pytest.mark.parametrize("overrides, message", [
    (["model.d_model=64"], "a different backbone"),
    (["objective.time_conditioning=true"], "a different backbone"),
])
def test_a_mismatched_backbone_is_a_one_line_error(tmp_path, overrides, message):
    _, path = saved(tmp_path, "objective.name=masked_elbo")
    block = build("objective.name=block_diffusion", "objective.block_size=4", *overrides)
    with pytest.raises(ConfigError, match=message) as info:
        init_from(block, path)
    assert "\n" not in str(info.value)


def test_training_with_init_from_starts_from_the_checkpoint(tmp_path):
    """lr ~ 0: the trained model is the checkpoint's (the wiring; without init_from it would be a fresh init)."""
    cfg = dlm.load_config(None, TINY + [
        "objective.name=block_diffusion", "objective.block_size=4", "train.steps=1", "train.lr=1e-12",
        "train.batch_size=2", "train.eval_batches=1", "train.progress=false", f"train.out_dir={tmp_path / 'run'}"])
    torch.manual_seed(1)
    source = dlm.DiffusionLM.from_config(dlm.load_config(None, TINY + ["objective.name=masked_elbo"]),
                                         vocab_size=len(tokenizer_from_config(cfg.data)))
    source.save_pretrained(str(tmp_path / "source"))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init_from=str(tmp_path / "source")))
    summary = train(cfg)
    trained = dlm.DiffusionLM.from_pretrained(summary["final_dir"])
    for (name, ours), theirs in zip(trained.state_dict().items(), source.state_dict().values()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-9, msg=name)


SHIFTED_AR = ("objective.name=block_diffusion", "objective.block_size=1", "objective.clip=[1.0,1.0]",
              "objective.logit_shift=true")


def converted(tmp_path, *overrides: str):
    """(the AR source, a block model initialized from it) in float64."""
    source, path = saved(tmp_path, "objective.name=autoregressive")
    block = build(*overrides)
    init_from(block, path)
    return source.double().eval(), block.double().eval()


def test_a_shifted_block_size_1_model_converted_from_ar_reproduces_its_next_token_logits(tmp_path):
    """Position j reads the output at j - 1, which at block size 1 is the clean stream's causal pass over x^{<j}:
    the AR model's own next-token logits, so the exact block likelihood is the AR likelihood (+ position 0)."""
    ar, block = converted(tmp_path, *SHIFTED_AR)
    x0 = torch.randint(0, VOCAB, (3, 16), generator=torch.Generator().manual_seed(2))
    masks = torch.full_like(x0, block.objective.mask_id)
    with torch.no_grad():
        logits = block.objective.two_stream_logits(block.logits, masks, x0, torch.ones(3, 16))
        torch.testing.assert_close(logits[:, 1:, :VOCAB], ar.logits(x0)[:, :-1], rtol=0, atol=1e-10)
        scored = torch.ones_like(x0, dtype=torch.float64)
        scored[:, 0] = 0  # the AR model's context token
        torch.testing.assert_close(block.elbo(x0, attention_mask=scored), ar.elbo(x0), rtol=1e-10, atol=0)
        unshifted = converted(tmp_path, *SHIFTED_AR[:-1])[1]
        assert not torch.allclose(unshifted.elbo(x0, attention_mask=scored), ar.elbo(x0))


def test_shifted_two_stream_logits_equal_shifted_passes_over_each_clean_prefix_and_block():
    """Training (two streams) and sampling (one block-causal pass over [clean prefix, noisy block], shifted by one
    position in predict) read the same outputs."""
    model = build("objective.name=block_diffusion", "objective.block_size=4", "objective.logit_shift=true").double()
    objective = model.objective
    x0 = torch.randint(0, VOCAB, (3, 16), generator=torch.Generator().manual_seed(2))
    t = objective.block_times(3, 16, (0.0, 1.0), generator=torch.Generator().manual_seed(0))
    xt = objective.corrupt(x0, t, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fast = subs(objective.two_stream_logits(model.logits, xt, x0, t), xt, objective.mask_id)
        naive = torch.cat([model(torch.cat([x0[:, :s], xt[:, s:s + 4]], dim=1)).log_probs[:, s:]
                           for s in range(0, 16, 4)], dim=1)
    torch.testing.assert_close(fast, naive, rtol=0, atol=1e-10)


def test_a_converted_shifted_model_decodes_the_ar_models_greedy_text(tmp_path):
    from dlm.sample import generate

    ar, block = converted(tmp_path, *SHIFTED_AR)
    prompt = torch.zeros(2, 16, dtype=torch.long)
    prompt[:, 0] = torch.tensor([3, 5])
    known = torch.zeros_like(prompt, dtype=torch.bool)
    known[:, 0] = True
    with torch.no_grad():
        texts = [generate(m, m.process, m.objective.sampler(None, temperature=0.0), steps=1, prompt=prompt,
                          prompt_mask=known) for m in (ar, block)]
    assert torch.equal(texts[0], texts[1])
    with pytest.raises(ConfigError, match="without the KV cache"):
        block.objective.sampler(None, kv_cache=True)
    with pytest.raises(ConfigError, match="without a cache policy"):  # passed directly, it would skip the shift
        block.generate(steps=1, shape=(2, 16), cache=BlockCache())


def test_logit_shift_is_refused_outside_block_diffusion():
    with pytest.raises(ConfigError, match="logit_shift applies to block_diffusion"):
        build("objective.name=masked_elbo", "objective.logit_shift=true")
