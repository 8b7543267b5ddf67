"""A library caller's process-global state survives dlm: the functions the CLI calls (`dlm eval ppl`, `dlm eval
genppl`, `dlm data prepare` with worker processes, task sources) leave torch's thread count, os.environ and the
registries as they found them. Threads are set by the CLI entry points around their run only."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import threadpoolctl  # noqa: F401  (sets KMP_DUPLICATE_LIB_OK when first imported: its own effect, not dlm's)
import torch

from dlm.data.prepare import prepare
from dlm.eval.commands import genppl_command, ppl_command
from dlm.registry import SOURCES
from dlm.tasks import task_source

CALLER_THREADS = 3  # not what any thread policy of dlm would choose on the test machines


@pytest.fixture
def caller_state(monkeypatch):
    """The caller's own thread count; yields a snapshot of (threads, environment) to compare with afterwards."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # so the default thread policy would pick its own count
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(CALLER_THREADS)
    try:
        yield lambda: (torch.get_num_threads(), dict(os.environ))
    finally:
        torch.set_num_threads(before)


def test_importing_dlm_changes_no_thread_count_and_no_environment_variable():
    code = ("import os, torch; env, threads = dict(os.environ), torch.get_num_threads(); import dlm, dlm.cli; "
            "assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items()); "
            "assert torch.get_num_threads() == threads")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]


def test_eval_ppl_and_genppl_leave_threads_and_environment_unchanged(checkpoints, tmp_path, caller_state):
    (tmp_path / "tiny.txt").write_text("".join(f"to be or not to be, line {i}\n" for i in range(40)))
    snapshot = caller_state()
    for threads in (0, 1):  # the default policy and an explicit count
        payload = ppl_command(str(checkpoints["mdlm"]), datasets=str(tmp_path / "tiny.txt"), device="cpu",
                              max_blocks=2, threads=threads, out=str(tmp_path / "ppl.json"))
        assert payload["runtime"]["cpu_threads"] != CALLER_THREADS  # it ran with its own count ...
        assert caller_state() == snapshot  # ... and gave the caller's back
    genppl_command(str(checkpoints["mdlm"]), reference=str(checkpoints["ar"]), num_samples=2, length=16, steps=4,
                   device="cpu", threads=1, out=str(tmp_path / "genppl.json"))
    assert caller_state() == snapshot


def test_data_prepare_workers_and_task_sources_leave_the_environment_and_registry_unchanged(tmp_path, caller_state):
    (tmp_path / "corpus.txt").write_text("\n\n".join(f"document {i} of the corpus" for i in range(200)))
    snapshot, sources = caller_state(), dict(SOURCES)
    prepare(str(tmp_path / "corpus.txt"), "byte", tmp_path / "prepared", num_proc=2)
    assert task_source("mult4x4", 300) == "task:mult4x4:300"
    assert caller_state() == snapshot and dict(SOURCES) == sources
