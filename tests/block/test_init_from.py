"""train.init_from: an MDLM or an autoregressive checkpoint of the same backbone starts a block-diffusion run;
anything else is a one-line error."""

import dataclasses

import pytest
import torch

import dlm
from dlm.data import tokenizer_from_config
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
