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
