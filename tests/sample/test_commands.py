"""`dlm sample` / `dlm infill` command functions against a stand-in checkpoint (an exact toy model)."""

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

import dlm
from dlm.config import load_config
from dlm.objectives import AutoregressiveObjective, MaskedELBO
from dlm.process import Absorbing
from dlm.registry import ConfigError
from dlm.sample.commands import infill_command, sample_command
from tests.sample.helpers import BOS, TOY, causal_oracle


def word_tokenizer() -> PreTrainedTokenizerFast:
    """Words a, b, c = ids 0, 1, 2 (the toy tokens) and <bos> = 3."""
    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "c": 2, "<bos>": BOS}, unk_token="<bos>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", unk_token="<bos>")


class StandIn(torch.nn.Module):
    """What the commands use of a DiffusionLM: process, objective, tokenizer, parameters, __call__."""

    def __init__(self, autoregressive: bool):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.process = None if autoregressive else Absorbing(3)
        cfg = load_config(None, ["objective.name=autoregressive"] if autoregressive else []).objective
        self.objective = AutoregressiveObjective(4, cfg) if autoregressive else MaskedELBO(self.process, cfg)
        self.mask_id = None if autoregressive else self.process.mask_id
        self.denoiser = causal_oracle if autoregressive else TOY.denoiser(self.process)
        self.tokenizer = word_tokenizer()

    def forward(self, xt, t):
        return self.denoiser(xt, t)


@pytest.fixture
def checkpoints(monkeypatch):
    models_by_path = {"toy-mdlm": StandIn(False), "toy-ar": StandIn(True)}

    class Loader:
        @staticmethod
        def from_pretrained(path):
            return models_by_path[path]

    monkeypatch.setattr(dlm, "DiffusionLM", Loader, raising=False)


def test_sample_command_prints_and_writes_jsonl(checkpoints, tmp_path, capsys):
    out = tmp_path / "samples.jsonl"
    texts = sample_command("toy-mdlm", sampler="theta_trapezoidal", steps=8, num_samples=3, length=3,
                           show_steps=True, out=str(out))
    printed = capsys.readouterr().out
    assert len(texts) == 3 and all(len(text.split()) == 3 and set(text.split()) <= {"a", "b", "c"} for text in texts)
    assert "--- sample 2 ---" in printed and "___" in printed  # the first show-steps line is all masks
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in records] == texts
    assert records[0]["settings"]["sampler"] == "theta_trapezoidal" and records[0]["settings"]["steps"] == 8


def test_sample_command_blocks_and_autoregressive(checkpoints):
    texts = sample_command("toy-mdlm", sampler="confidence", steps=3, num_samples=2, length=3, block_size=1)
    assert all(len(text.split()) == 3 for text in texts)
    texts = sample_command("toy-ar", steps=1, num_samples=2, length=3, temperature=0.0)
    assert texts[0] == texts[1] and len(texts[0].split()) == 3  # greedy: BOS (skipped) + 3 tokens


def test_infill_command_keeps_the_known_words(checkpoints):
    texts = infill_command("toy-mdlm", "b <mask:1> c", steps=4, num_samples=5, seed=1)
    assert all(text.split()[0] == "b" and text.split()[2] == "c" for text in texts)


def test_sampler_options_and_cost_reach_the_output(checkpoints, tmp_path, capsys):
    """`--sampler name:key=value`: threshold 0 decodes the 3 positions in one call, reported as NFE and tokens/s."""
    out = tmp_path / "fast.jsonl"
    sample_command("toy-mdlm", sampler="confidence:threshold=0", steps=8, num_samples=2, length=3, out=str(out))
    assert "1 denoiser calls (NFE), 6 tokens at" in capsys.readouterr().err
    record = json.loads(out.read_text().splitlines()[0])
    assert record["run"]["nfe"] == 1 and record["run"]["tokens"] == 6 and record["run"]["tokens_per_s"] > 0
    assert record["settings"]["sampler"] == "confidence:threshold=0"
    sample_command("toy-mdlm", sampler="remdm:schedule=loop;eta=0.05", steps=8, num_samples=2, length=3)
    err = capsys.readouterr().err  # 8 steps, and a noise removal if a mask is left
    assert "8 denoiser calls (NFE)" in err or "9 denoiser calls (NFE)" in err
    with pytest.raises(ConfigError, match="threshold must be float"):
        sample_command("toy-mdlm", sampler="confidence:threshold=high", steps=8, num_samples=1, length=3)


def test_sample_command_prints_the_fraction_of_corpus_words(checkpoints, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a a b\n\nb a\n")  # "c" is not a corpus word
    dlm.DiffusionLM.from_pretrained("toy-mdlm").config = load_config(overrides=[f"data.source={corpus}"])
    texts = sample_command("toy-mdlm", steps=4, num_samples=4, length=3, corpus_words=True)
    words = " ".join(texts).split()
    expected = sum(word != "c" for word in words) / len(words)
    assert 0 < expected < 1
    assert f"corpus words: {100 * expected:.1f}% of the 12 whitespace-separated words" in capsys.readouterr().out
