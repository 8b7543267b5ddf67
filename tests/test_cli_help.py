"""Every `--help` of the CLI works and documents every flag: the commands and groups are discovered from the parser
itself (a new subcommand is covered with no edit here), plus the `dlm-lm-eval` console script."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import pytest

from dlm.cli import build_parser, main


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under parser, groups included: (), ('task',), ('task', 'eval'), ..."""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                paths += _command_paths(child, (*prefix, name))
    return paths


def _parser_at(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


PATHS = _command_paths(build_parser())


def test_the_parser_walk_finds_every_command_and_group():
    names = {" ".join(path) for path in PATHS}
    assert {"", "task", "task eval", "task train", "eval", "eval ppl", "sample", "edit", "lm-eval", "vq"} <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "dlm")
def test_help_prints_and_exits_0(path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and out.startswith("usage: dlm")


@pytest.mark.parametrize("path", [p for p in PATHS if not any(isinstance(a, argparse._SubParsersAction)
                                                             for a in _parser_at(p)._actions)],
                         ids=lambda path: " ".join(path))
def test_every_flag_and_argument_has_help(path):
    parser = _parser_at(path)
    undocumented = [action.dest for action in parser._actions
                    if not isinstance(action, argparse._HelpAction)
                    and not (action.help or "").replace("(required)", "").split("(default:")[0].strip()]
    assert not undocumented, f"dlm {' '.join(path)}: no help for {undocumented}"


def test_dlm_lm_eval_help():
    pytest.importorskip("lm_eval")
    script = shutil.which("dlm-lm-eval") or shutil.which("dlm-lm-eval", path=str(__import__("pathlib").Path(
        sys.executable).parent))
    if script is None:
        pytest.skip("the dlm-lm-eval console script is not installed (pip install -e .)")
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower() and "Traceback" not in done.stderr
