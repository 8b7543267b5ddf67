"""The README's headline numbers are the published results: scripts/bench/readme_numbers.py regenerates each
sentence (number, command and publishing commit) from benchmarks/, and the README must say it word for word."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from scripts.bench import readme_numbers

REPO = Path(__file__).resolve().parents[2]
IN_GIT = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=REPO, capture_output=True).returncode == 0


@pytest.mark.skipif(not IN_GIT, reason="the publishing commits need the git history of benchmarks/")
@pytest.mark.parametrize("name", list(readme_numbers.HEADLINES))
def test_the_readme_states_the_published_number(name):
    readme = re.sub(r"\s+", " ", (REPO / "README.md").read_text())
    assert readme_numbers.HEADLINES[name]() in readme


def test_signed_percentages_use_the_readme_minus_sign():
    assert readme_numbers._signed(-0.3) == "\u22120.3" and readme_numbers._signed(0.25, 2) == "0.25"
