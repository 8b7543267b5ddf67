"""`dlm sample` on a block-diffusion checkpoint: the block sampler by default, variable length with
--stop-at-eos, one-line errors for what cannot run."""

import json

import pytest
import torch

import dlm
from dlm import cli
from dlm.data import build_tokenizer
from dlm.sample.commands import sample_command

TEXT = ["to be or not to be, that is the question", "whether tis nobler in the mind to suffer"]
TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.max_len=32", "data.seq_len=32"]


@pytest.fixture
def checkpoint(tmp_path):
    def save(objective: str, *extra: str):
        tokenizer = build_tokenizer("char", TEXT)
        torch.manual_seed(0)
        cfg = dlm.load_config(None, TINY + [f"objective.name={objective}", *extra])
        model = dlm.DiffusionLM.from_config(cfg, vocab_size=len(tokenizer), tokenizer=tokenizer)
        with torch.no_grad():  # make EOS likely, so that samples stop early
            model.backbone.head.bias[tokenizer.eos_token_id] += 3.0
        path = tmp_path / objective
        model.save_pretrained(str(path))
        return str(path), tokenizer

    return save


def test_block_checkpoint_samples_variable_length_text(checkpoint, tmp_path):
    path, tokenizer = checkpoint("block_diffusion", "objective.block_size=4")
    eos = tokenizer.eos_token_id
    sample_command(path, steps=4, num_samples=4, length=32, seed=1, stop_at_eos=True, out=str(tmp_path / "s.jsonl"))
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    stops = [record["tokens"].index(eos) for record in records]
    assert len(set(stops)) > 1  # rows stop independently
    for record, stop in zip(records, stops):
        assert set(record["tokens"][stop:]) == {eos}  # everything after the stop is padding
        assert len(record["text"]) <= stop  # the printed text ends before the EOS


def test_stop_at_eos_on_a_fixed_length_sampler_is_a_one_line_error(checkpoint, capsys):
    path, _ = checkpoint("masked_elbo")
    assert cli.main(["sample", "--checkpoint", path, "--length", "16", "--steps", "2", "--stop-at-eos"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "eos_id" in err[-1]


@pytest.mark.parametrize("spec", ["confidence:threshold=0.9", "first_hitting",
                                  "block:inner=confidence,factor=1.0,nucleus=strict,top_p=0.9"])
def test_fast_decoding_options_on_a_block_checkpoint(checkpoint, capsys, spec):
    path, _ = checkpoint("block_diffusion", "objective.block_size=4")
    assert cli.main(["sample", "--checkpoint", path, "--length", "32", "--steps", "4", "--num-samples", "2",
                     "--sampler", spec]) == 0
    nfe = int(capsys.readouterr().err.split(" denoiser calls (NFE)")[0].split()[-1])
    assert 8 + 7 <= nfe <= 32 + 7  # at least a call per block, at most a call per token, + 7 clean passes


def test_a_block_checkpoint_samples_past_its_max_len_through_a_window(checkpoint, tmp_path, capsys):
    path, tokenizer = checkpoint("block_diffusion", "objective.block_size=4")  # max_len 32
    out = tmp_path / "long.jsonl"
    sample_command(path, steps=4, num_samples=2, length=48, seed=1, out=str(out))
    assert "each block sees the last 32 tokens" in capsys.readouterr().err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    mask = dlm.DiffusionLM.from_pretrained(path).mask_id
    assert all(len(r["tokens"]) == 48 and mask not in r["tokens"] for r in records)


def test_a_bad_block_option_is_a_one_line_error(checkpoint, capsys):
    path, _ = checkpoint("block_diffusion", "objective.block_size=4")
    assert cli.main(["sample", "--checkpoint", path, "--length", "32", "--sampler", "block:window=6"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "multiple of block_size" in err[-1]
