"""The README as a newcomer meets it: every `dlm ...` command it shows parses against the real CLI (flags, types,
config files and their overrides), every script it names exists, and its Python snippet runs as written without
leaving files in the repository. (The commands' behaviour is covered by the tests of each command, and the
quickstart script runs train / sample / infill end to end.)"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from dlm.cli import parse_arguments
from dlm.config import load_config

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _bash_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines
        lines += [line.strip() for line in joined.splitlines() if line.strip()]
    return lines


def _commands() -> list[list[str]]:
    out = []
    for line in _bash_lines():
        argv = shlex.split(line, comments=True)
        if argv[:1] == ["dlm"]:
            out.append(argv[1:])
        elif "dlm.cli" in argv:
            out.append(argv[argv.index("dlm.cli") + 1:])
    return out


COMMANDS = _commands()


def test_the_readme_shows_commands_of_every_kind():
    assert {argv[0] for argv in COMMANDS} >= {"train", "sample", "infill", "eval", "lm-eval"}


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a)[:60] for a in COMMANDS])
def test_every_readme_command_parses(argv):
    args = parse_arguments(argv)
    if argv[0] == "train":
        assert (REPO / args["config"]).is_file(), args["config"]
        load_config(REPO / args["config"], args["overrides"])  # the overrides name real keys with valid values


def test_every_script_the_readme_names_exists():
    scripts = set(re.findall(r"(scripts/[\w./-]+\.(?:sh|py))", README)) | set(re.findall(r"`(\.ci/run)`", README))
    assert scripts and not [s for s in sorted(scripts) if not (REPO / s).is_file()]


def test_the_python_snippet_runs_as_written_and_leaves_the_repo_clean(monkeypatch):
    snippet = re.search(r"## Using it from Python\n\n```python\n(.*?)```", README, re.S).group(1)
    before = _untracked()
    monkeypatch.chdir(REPO)  # its config path is relative to the repository root
    exec(compile(snippet, "README.md", "exec"), {})
    assert _untracked() == before


def _untracked() -> set[str]:
    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, capture_output=True,
                          text=True)
    return set(done.stdout.splitlines()) if done.returncode == 0 else set()
