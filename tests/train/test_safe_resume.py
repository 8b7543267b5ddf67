"""--resume never loses data: it restores the run's own config, refuses unsafe changes, leaves a finished run's
final/ alone, survives a missing or garbled `latest`, a torn metrics line and killed writes, and prunes only what
healthy checkpoints replace."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch
import yaml

from dlm.registry import ConfigError
from dlm.train import train_command
from dlm.train.checkpoint import LATEST, checkpoint_root, save_checkpoint
from dlm.train.log import METRICS_FILE, read_metrics
from tests.train.conftest import fake_model_dir, final_weights, tiny_run

pytestmark = pytest.mark.filterwarnings("ignore:resuming with the run.s saved config")
STEPS = ["train.steps=4", "train.save_every=2", "train.eval_every=0"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, small_corpus):
    """A finished 4-step run (checkpoints at 2 and 4) started with an override its YAML does not hold."""
    root = tmp_path_factory.mktemp("finished")
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump({"model": "tiny", "train": {"out_dir": str(root / "run")}}))
    train_command(str(config), [*tiny_run(root / "run", small_corpus, *STEPS), "model.d_model=32"])
    return config, root / "run"


@pytest.fixture
def run(finished, tmp_path):
    """A private copy of the finished run and a YAML pointing at it: (config path, out_dir)."""
    config, source = finished
    out = tmp_path / "run"
    shutil.copytree(source, out)
    text = config.read_text().replace(str(source), str(out))
    (tmp_path / "run.yaml").write_text(text)
    saved = (out / "config.yaml").read_text().replace(str(source), str(out))
    (out / "config.yaml").write_text(saved)
    return str(tmp_path / "run.yaml"), out


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resume_restores_the_saved_config_with_its_overrides(run):
    config, out = run
    with pytest.warns(UserWarning, match="resuming with the run's saved config .* differs from .* in .*model.d_model"):
        summary = train_command(config, ["train.steps=6"], resume=True)
    assert summary["steps"] == 6 and final_weights(out)["model.backbone.embed.weight"].shape[1] == 32
    assert [r["step"] for r in read_metrics(out / METRICS_FILE)] == list(range(1, 7))


def test_unsafe_change_is_refused_and_the_finished_run_is_untouched(run, tmp_path):
    config, out = run
    before = _snapshot(out)
    other = tmp_path / "other.txt"
    other.write_text("a different corpus\n" * 500)
    with pytest.raises(ConfigError) as info:
        train_command(config, [f"data.source={other}", "train.seed=3"], resume=True)
    message = str(info.value)
    assert "\n" not in message and "data.source:" in message and "train.seed: 0 -> 3" in message
    assert "only train.eval_every" in message and _snapshot(out) == before


def test_resuming_a_finished_run_keeps_its_final_even_if_latest_model_is_broken(run):
    config, out = run
    final = _snapshot(out / "final")
    weights = checkpoint_root(out) / "step_000004" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    train_command(config, [], resume=True)
    assert _snapshot(out / "final") == final
    shutil.rmtree(out / "final")  # killed between the last checkpoint and the export: latest/model is checked
    with pytest.raises(ConfigError, match="model.safetensors is unreadable .*nothing was exported"):
        train_command(config, [], resume=True)
    assert not (out / "final").exists()


@pytest.mark.parametrize("pointer", [None, b"\xff\xfe\x00garbage", b"step_000099\n"])
def test_missing_or_garbled_latest_resumes_from_the_newest_checkpoint(run, pointer):
    config, out = run
    latest = checkpoint_root(out) / LATEST
    latest.unlink() if pointer is None else latest.write_bytes(pointer)
    metrics = (out / METRICS_FILE).read_text()
    with pytest.warns(UserWarning, match="resuming from the newest complete checkpoint, step_000004"):
        train_command(config, [], resume=True)
    assert (out / METRICS_FILE).read_text() == metrics  # nothing trained, nothing lost


def test_starting_over_in_a_run_dir_is_refused_even_without_latest(run, small_corpus):
    config, out = run
    (checkpoint_root(out) / LATEST).unlink()
    before = _snapshot(out)
    with pytest.raises(ConfigError, match="already holds a run's checkpoints; pass --resume"):
        train_command(config, tiny_run(out, small_corpus, *STEPS))
    assert _snapshot(out) == before


def test_a_torn_metrics_line_is_dropped_with_a_warning(run):
    config, out = run
    (checkpoint_root(out) / "step_000004").rename(checkpoint_root(out) / "step_000004.bak")
    (checkpoint_root(out) / LATEST).write_text("step_000002\n")
    with open(out / METRICS_FILE, "a") as handle:
        handle.write('{"step": 5, "loss": 1.2')  # a kill mid-write
    with pytest.warns(UserWarning, match="dropping a torn last line"):
        train_command(config, [], resume=True)
    assert [r["step"] for r in read_metrics(out / METRICS_FILE)] == [1, 2, 3, 4]


def test_killed_writes_are_cleaned_and_an_orphaned_old_final_is_restored(run):
    config, out = run
    root = checkpoint_root(out)
    (root / ".step_000006.tmp-123").mkdir()
    (root / ".latest.tmp-123").write_text("step_000006\n")
    (out / "final").rename(out / ".final.old-77")  # killed between the two renames of a re-export
    final = _snapshot(out / ".final.old-77")
    train_command(config, [], resume=True)
    assert sorted(p.name for p in root.iterdir()) == [LATEST, "step_000002", "step_000004"]
    assert _snapshot(out / "final") == final and not (out / ".final.old-77").exists()


def test_thread_count_change_is_warned_on_resume(run):
    config, out = run
    threads = torch.get_num_threads()
    assert yaml.safe_load((out / "config.yaml").read_text())  # the thread header is a comment
    assert f"# intra_op_threads: {threads}" in (out / "config.yaml").read_text()
    torch.set_num_threads(threads + 1)
    try:
        with pytest.warns(UserWarning, match=f"checkpointed with {threads} intra-op threads and resumes with"):
            train_command(config, [], resume=True)
    finally:
        torch.set_num_threads(threads)
    assert {r["threads"] for r in read_metrics(out / METRICS_FILE)} == {threads}


def test_pruning_keeps_healthy_checkpoints(tmp_path):
    state = {"step": 0, "model": {}, "optimizer": {}, "scheduler": {}, "data": {}}
    for step in (1, 2):
        save_checkpoint(tmp_path, step, {**state, "step": step}, fake_model_dir, keep=2)
    broken = tmp_path / "step_000003"
    broken.mkdir()
    (broken / "trainer_state.pt").write_bytes(b"not a zip")
    save_checkpoint(tmp_path, 4, {**state, "step": 4}, fake_model_dir, keep=2)
    # step 3 is broken, so it does not count: the two healthy newest are 2 and 4
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_000002", "step_000003", "step_000004"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_checkpoint(tmp_path, 5, {**state, "step": 5}, fake_model_dir, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_000004", "step_000005"]


def test_a_fresh_start_on_resume_never_overwrites_data(tmp_path):
    from dlm.train.resume import check_fresh_start

    out, root = tmp_path / "run", tmp_path / "run" / "checkpoints"
    check_fresh_start(out, root)  # missing
    (root / ".step_000002.tmp-41").mkdir(parents=True)  # killed before its first save completed
    (out / "config.yaml").write_text("model: tiny\n")
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / "tensorboard").mkdir()
    check_fresh_start(out, root)
    for data in (out / "final", root / "step_000002", out / "notes.txt"):
        data.mkdir() if data.suffix == "" else data.write_text("x")
        with pytest.raises(ConfigError, match=f"holds no loadable checkpoint but holds .*{data.name}"):
            check_fresh_start(out, root)
        data.rmdir() if data.is_dir() else data.unlink()


def test_single_process_runs_start_or_resume_by_the_same_rules(tmp_path):
    """state_to_resume (dlm rl, dlm distill, dlm vq train): a finished or checkpointed out_dir is refused without
    --resume; --resume on a missing or run-files-only folder starts fresh, next to foreign files it refuses, and
    with checkpoints it returns the newest loadable state, past a corrupt one."""
    from dlm.train.resume import state_to_resume

    out = tmp_path / "run"
    assert state_to_resume(out, resume=True, run="an RL run", flag="--out-dir") is None  # nothing there yet
    out.mkdir()
    (out / "metrics.jsonl").write_text("")
    assert state_to_resume(out, resume=True, run="an RL run", flag="--out-dir") is None  # run files only
    (out / "notes.txt").write_text("someone else's")
    with pytest.raises(ConfigError, match="cannot resume"):
        state_to_resume(out, resume=True, run="an RL run", flag="--out-dir")
    (out / "notes.txt").unlink()
    root = checkpoint_root(out)
    for step in (1, 2):
        save_checkpoint(root, step, {"step": step, "model": {}, "optimizer": {}, "scheduler": {}, "data": {}},
                        fake_model_dir)
    with pytest.raises(ConfigError, match="already holds an RL run; pass --resume to continue it, or choose another "
                                          "--out-dir"):
        state_to_resume(out, resume=False, run="an RL run", flag="--out-dir")
    assert state_to_resume(out, resume=True, run="an RL run", flag="--out-dir")["step"] == 2
    (root / "step_000002" / "trainer_state.pt").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="newest earlier checkpoint"):
        assert state_to_resume(out, resume=True, run="an RL run", flag="--out-dir")["step"] == 1
    shutil.rmtree(root)
    (out / "final").mkdir()
    with pytest.raises(ConfigError, match="already holds an RL run"):
        state_to_resume(out, resume=False, run="an RL run", flag="--out-dir")
