"""GSM8K as real text: the checker reads the final number, and (with the data) SFT and RL run on a tiny model."""

import pytest
import torch

import dlm
from dlm.registry import ConfigError
from dlm.tasks import get_task
from dlm.tasks.gsm8k import final_number
from dlm.train.log import read_metrics
from dlm.train.rl.run import GRPOConfig, rl_train


def test_final_number():
    assert final_number("so 3 + 4 = 7\n#### 1,207") == "1207"
    assert final_number("#### 5 #### -2.5") == "-2.5"
    assert final_number("no marker 7") is None and final_number("#### seven") is None


def test_missing_data_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DLM_DATA_DIR", str(tmp_path))
    task = type(get_task("gsm8k"))()  # a fresh instance: nothing cached
    with pytest.raises(ConfigError, match="gsm8k/train.jsonl.gz, which is missing"):
        task.generate(1, seed=0)


@pytest.fixture
def gsm8k():
    task = type(get_task("gsm8k"))()
    if not task.has_split("test"):
        pytest.skip("GSM8K files absent (../shared/data/gsm8k)")
    return task


def test_checker_accepts_references_and_rejects_other_numbers(gsm8k):
    examples = gsm8k.load("test")
    assert len(examples) > 900 and all(gsm8k.check(ex.question, ex.answer) for ex in examples)
    ex = examples[0]
    wrong = ex.answer.rsplit("####", 1)[0] + "#### " + str(int(final_number(ex.answer)) + 1)
    assert not gsm8k.check(ex.question, wrong) and not gsm8k.check("an unknown question", ex.answer)
    assert not gsm8k.check("an unknown question", "no final number")
    train = gsm8k.generate(20, seed=0, exclude=gsm8k.shipped_questions())
    assert all(gsm8k.check(q, a) for q, a in train)
    assert all(len(gsm8k.format(q, a)) == gsm8k.row_len for q, a in train)


def test_rl_pipeline_runs_on_a_tiny_model(gsm8k, tmp_path):
    cfg = dlm.load_config(None, ["model.d_model=16", "model.n_layers=1", "model.n_heads=2",
                                 f"model.max_len={gsm8k.row_len}"])
    torch.manual_seed(0)
    dlm.DiffusionLM.from_config(cfg, len(gsm8k.tokenizer), tokenizer=gsm8k.tokenizer).save_pretrained(
        str(tmp_path / "sft"))
    rl_train(gsm8k, tmp_path / "sft", tmp_path / "rl", GRPOConfig(steps=1, prompts=1, group_size=2, mu=1,
                                                                   sampler_steps=8))
    (record,) = read_metrics(tmp_path / "rl/metrics.jsonl")
    assert record["accuracy"] == 0.0 and record["kl"] == 0.0  # a random model; mu = 1: the policy is the reference
