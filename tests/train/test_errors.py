"""Bad input gives a one-line ConfigError from train_command (the CLI prints `error: <message>`, exits 2)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dlm.registry import ConfigError
from dlm.train import train_command
from dlm.train.checkpoint import TRAINER_STATE, checkpoint_root, latest_checkpoint
from tests.train.conftest import REPO, tiny_run


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: tiny\ntrain:\n  steps: 2\n  progress: false\n")
    return str(path)


def _error(config: str, overrides: list[str], resume: bool = False) -> str:
    with pytest.raises(ConfigError) as info:
        train_command(config, overrides, resume=resume)
    message = str(info.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.stepz=3", "unknown config key 'train.stepz' (did you mean 'steps'?)"),
        ("train.steps=many", "config key 'train.steps' expects int"),
        ("train.batch_size=7", "train.batch_size=7 must be a positive multiple"),
        ("train.lr_schedule=linear", "unknown train.lr_schedule 'linear'"),
        ("train.precision=bf16", "needs a CUDA GPU"),
        ("objective.name=mdlm", "unknown objective 'mdlm'"),
        ("model.n_heads=5", "divisible"),
    ],
)
def test_bad_config_values(config, tmp_path, small_corpus, override, expected):
    overrides = tiny_run(tmp_path / "run", small_corpus, "train.grad_accum=2", override)
    assert expected in _error(config, overrides)


def test_sequence_longer_than_the_model_is_caught_at_build_time(config, tmp_path):
    message = _error(config, [f"train.out_dir={tmp_path}", "data.seq_len=256", "model.max_len=128"])
    assert "data.seq_len=256 exceeds model.max_len=128" in message


def test_empty_dataset(config, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert "has no documents" in _error(config, tiny_run(tmp_path / "run", empty))


def test_dataset_too_small_for_a_batch(config, tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("to be or not to be\n\nthat is the question\n")
    assert "use more data" in _error(config, tiny_run(tmp_path / "run", small))


def test_resume_without_checkpoint_refuses_where_a_fresh_start_could_overwrite_data(config, tmp_path, small_corpus):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("not a dlm file")  # (an empty run dir starts fresh: test_resume_fresh)
    message = _error(config, tiny_run(tmp_path / "run", small_corpus), resume=True)
    assert "holds no loadable checkpoint but holds notes.txt" in message


def test_corrupt_and_missing_trainer_state(config, tmp_path, small_corpus):
    overrides = tiny_run(tmp_path / "run", small_corpus)
    train_command(config, overrides)
    assert "already holds a run's checkpoints" in _error(config, overrides)
    state = latest_checkpoint(checkpoint_root(tmp_path / "run")) / TRAINER_STATE
    state.write_bytes(state.read_bytes()[:100])
    assert "trainer_state.pt is corrupt" in _error(config, overrides, resume=True)
    state.unlink()
    message = _error(config, overrides, resume=True)  # the only checkpoint: nothing earlier to fall back to
    assert "no checkpoint in" in message and "is missing trainer_state.pt" in message


def test_resume_with_a_different_model(config, tmp_path, small_corpus):
    overrides = tiny_run(tmp_path / "run", small_corpus)
    train_command(config, overrides)
    message = _error(config, [*overrides, "model.d_model=32"], resume=True)
    assert "differs from the run's own in model.d_model: 64 -> 32" in message
    (tmp_path / "run" / "config.yaml").unlink()  # a run without its saved config: the checkpoint itself refuses
    assert "does not match the configured model" in _error(config, [*overrides, "model.d_model=32"], resume=True)


def test_cli_prints_error_and_exits_2(config):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "dlm.cli", "train", "--config", config, "train.stepz=3"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == ["error: unknown config key 'train.stepz' (did you mean 'steps'?)"]
