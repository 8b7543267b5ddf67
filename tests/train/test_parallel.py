"""Two CPU processes (torchrun, gloo) train the same model as one process over the same global batch.

Randomness is keyed by (seed, step, shard) with shard = rank + world_size * micro-batch (dlm/train/parallel.py),
so 2 ranks x 1 micro-batch of 4 rows and 1 rank x 2 accumulated micro-batches of 4 rows see the same rows, the
same t and the same x_t; only the float summation order of the gradient reduction differs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlm.config import load_config
from dlm.train import train
from tests.train.conftest import REPO, final_weights, tiny_run

STEPS = ["train.steps=3", "train.eval_every=0", "train.save_every=0"]
LAUNCH = "import sys; from dlm.train import train_command; train_command(sys.argv[1], sys.argv[2:])"


def _torchrun(config: Path, overrides: list[str]) -> None:
    """`torchrun --nproc_per_node=2` on a free localhost port, as `torchrun ... -m dlm.cli train` would run."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--no-python",
           sys.executable, "-c", LAUNCH, str(config), *overrides]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def single_process(tmp_path_factory, small_corpus):
    out = tmp_path_factory.mktemp("single")
    train(load_config(None, tiny_run(out, small_corpus, *STEPS, "train.grad_accum=2")))
    return final_weights(out)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_ranks_match_one_process(tmp_path, small_corpus, single_process, parallel):
    config = tmp_path / "run.yaml"
    config.write_text(f"train:\n  parallel: {parallel}\n")
    _torchrun(config, tiny_run(tmp_path / "run", small_corpus, *STEPS))
    two = final_weights(tmp_path / "run")
    assert two.keys() == single_process.keys()
    for name, weight in single_process.items():
        torch.testing.assert_close(two[name], weight, rtol=1e-5, atol=1e-5, msg=name)
