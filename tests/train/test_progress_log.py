"""Progress in a log (stderr not a terminal) is plain lines, never a carriage-return stream: training prints one
line every train.log_every steps, the other long loops about ten lines each (dlm/utils/progress.py)."""

from __future__ import annotations

import io
import re
import subprocess
import sys

from dlm.utils.progress import LineProgress, progress
from tests.train.conftest import REPO, tiny_run


def test_training_with_stderr_in_a_file_prints_one_line_every_log_every_steps(tmp_path, small_corpus):
    overrides = tiny_run(tmp_path / "run", small_corpus, "train.steps=6", "train.log_every=2", "train.eval_every=0",
                         "train.save_every=0", "train.progress=true")
    (tmp_path / "run.yaml").write_text("model: tiny\n")
    with open(tmp_path / "stderr.log", "w") as stderr, open(tmp_path / "stdout.log", "w") as stdout:
        done = subprocess.run([sys.executable, "-m", "dlm.cli", "train", "--config", str(tmp_path / "run.yaml"),
                               *overrides], stdout=stdout, stderr=stderr, cwd=REPO, timeout=600)
    err, out = (tmp_path / "stderr.log").read_text(), (tmp_path / "stdout.log").read_text()
    assert done.returncode == 0, err[-2000:]
    assert "\r" not in err and "\r" not in out
    lines = [line for line in err.splitlines() if line.startswith("train:")]
    assert [re.match(r"train: (\d+)/6 \(\d+%\) step ", line).group(1) for line in lines] == ["2", "4", "6"], err
    assert all("loss=" in line for line in lines)


def test_a_loop_in_a_log_prints_about_ten_plain_lines_and_a_terminal_gets_tqdm():
    log = io.StringIO()  # not a terminal
    bar = progress(range(95), desc="sampling", unit="step", file=log)
    assert isinstance(bar, LineProgress) and sum(1 for _ in bar) == 95
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 11  # every 9 steps, and the last at 95
    assert lines[0].startswith("sampling: 9/95 (9%) step") and lines[-1].startswith("sampling: 95/95 (100%) step")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    from tqdm.auto import tqdm

    assert isinstance(progress(total=3, file=Terminal()), tqdm)
