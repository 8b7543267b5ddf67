"""The distillation loop: a resumed run continues the same loss curve, a student is an ordinary checkpoint that
samples the same tokens after saving and loading, and bad input gives one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

import dlm
from dlm.sample.block import BlockSampler
from dlm.train.distill import run as distill_run
from dlm.train.distill.run import DistillConfig, distill
from tests.distill.conftest import make_teacher

# case -> (method, the teacher's objective and its overrides, other distillation settings)
CASES = {"sdtt": ("sdtt", ["masked_elbo"], {}), "dcd": ("dcd", ["uniform_elbo"], {}),
         "sdtt_block": ("sdtt", ["block_diffusion", "objective.block_size=4"], {}),
         "sdtt_reference": ("sdtt", ["masked_elbo"], {"target": "sampled", "time_sampling": "uniform", "ema": 0.9})}


def read_metrics(path):
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in path.read_text().splitlines()]


@pytest.mark.parametrize("case", list(CASES))
def test_resumed_distillation_continues_the_same_curve(tmp_path, corpus, case, monkeypatch):
    method, teacher_objective, settings = CASES[case]
    teacher = make_teacher(tmp_path / "teacher", corpus, *teacher_objective)
    cfg = DistillConfig(method=method, teacher_steps=8, rounds=2, steps_per_round=3, batch_size=4, lr=1e-2,
                        save_every=2, log_every=1, **settings)
    distill(teacher, tmp_path / "full", cfg)
    calls, original = [], distill_run.method_loss

    def crash_at_step_six(*args, **kwargs):  # a kill in round 1, after the checkpoint of step 4
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(distill_run, "method_loss", crash_at_step_six)
    with pytest.raises(KeyboardInterrupt):
        distill(teacher, tmp_path / "split", cfg)
    monkeypatch.setattr(distill_run, "method_loss", original)
    distill(teacher, tmp_path / "split", cfg, resume=True)
    full, split = read_metrics(tmp_path / "full/metrics.jsonl"), read_metrics(tmp_path / "split/metrics.jsonl")
    assert split == full and len(full) == 6
    assert [r["student_steps"] for r in full] == [4, 4, 4, 2, 2, 2]
    assert len({r["loss"] for r in full}) == 6  # the curve moves: equality is not of constants
    for name in ("final/model.safetensors", "students/steps_4/model.safetensors"):
        a, b = (dlm.DiffusionLM.from_pretrained(str(tmp_path / run / name.split("/model")[0])) for run in
                ("full", "split"))
        for (key, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), key


@pytest.mark.parametrize("case", list(CASES))
def test_student_is_an_ordinary_checkpoint_that_samples_the_same_tokens(tmp_path, corpus, case):
    method, teacher_objective, settings = CASES[case]
    teacher = make_teacher(tmp_path / "teacher", corpus, *teacher_objective)
    summary = distill(teacher, tmp_path / "run", DistillConfig(method=method, teacher_steps=4, rounds=1,
                                                               steps_per_round=2, batch_size=4, lr=1e-2, **settings))
    student = dlm.DiffusionLM.from_pretrained(summary["students"][2])
    teacher_model = dlm.DiffusionLM.from_pretrained(str(teacher))
    changed = any(not torch.equal(a, b) for a, b in zip(student.state_dict().values(),
                                                         teacher_model.state_dict().values()))
    assert changed  # the student trained away from the teacher's weights
    student.save_pretrained(str(tmp_path / "again"))
    reloaded = dlm.DiffusionLM.from_pretrained(str(tmp_path / "again"))

    sampler = student.objective.sampler("ancestral")  # a block model's: the block sampler, ancestral per block
    assert isinstance(sampler, BlockSampler) == (case == "sdtt_block")

    def draw(model):  # 2 steps (per block for a block model): the round's student steps
        return model.generate(sampler, steps=2, shape=(3, 16), generator=torch.Generator().manual_seed(5))

    assert torch.equal(draw(student), draw(reloaded))
    assert not torch.equal(draw(student), draw(teacher_model))


def test_students_export_the_ema_weights_and_the_teacher_takes_the_raw_ones(tmp_path, corpus):
    teacher = make_teacher(tmp_path / "teacher", corpus, "masked_elbo")
    cfg = DistillConfig(teacher_steps=8, rounds=2, steps_per_round=3, batch_size=4, lr=1e-2, ema=0.5)
    distill(teacher, tmp_path / "run", cfg)
    state = torch.load(tmp_path / "run/checkpoints/step_000003/trainer_state.pt", weights_only=False)
    student = dlm.DiffusionLM.from_pretrained(str(tmp_path / "run/students/steps_4")).state_dict()
    for name, averaged in state["ema"]["shadow"].items():
        assert torch.equal(student[name], averaged), name
    assert any(not torch.equal(student[name], raw) for name, raw in state["model"].items())
    for name, raw in state["model"].items():  # round 1's teacher is the raw student
        assert torch.equal(state["data"]["teacher"][name], raw), name


def test_distill_errors_are_one_line(tmp_path, corpus, capsys):
    from dlm.cli import main

    assert main(["distill", "--teacher", str(tmp_path / "none"), "--out-dir", str(tmp_path / "d")]) == 2
    assert "teacher checkpoint directory not found" in capsys.readouterr().err
    uniform = make_teacher(tmp_path / "uniform", corpus, "uniform_elbo")
    assert main(["distill", "--teacher", str(uniform), "--out-dir", str(tmp_path / "d")]) == 2
    assert "--method sdtt distils a masked (absorbing) model" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(uniform), "--out-dir", str(tmp_path / "d"), "--method", "dcd",
                 "--teacher-steps", "12", "--rounds", "3"]) == 2
    assert "divisible by 2^rounds = 8" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(uniform), "--out-dir", str(tmp_path / "d"), "--method", "dcd",
                 "--divergence", "js"]) == 2
    assert "divergence 'js' is not one of" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(uniform), "--out-dir", str(tmp_path / "d"), "--target", "mean"]) == 2
    assert "target='mean' is not one of: law, sampled" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(uniform), "--out-dir", str(tmp_path / "d"), "--ema", "1"]) == 2
    assert "ema=1.0 must be 0 (off) or in (0, 1)" in capsys.readouterr().err
