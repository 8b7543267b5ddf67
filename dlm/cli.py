"""`dlm <command> ...`: each subcommand is one typed function; its flags are derived from the signature.

    dlm train --config configs/runs/shakespeare_mdlm.yaml train.steps=200 [--resume]
    dlm sample --checkpoint runs/x/final --sampler ancestral --steps 128 --num-samples 4 --length 128
    dlm infill --checkpoint runs/x/final --text "To be, or <mask:12> the question"
    dlm eval ppl --checkpoint runs/x/final --datasets ptb,wikitext2
    dlm edit --checkpoint runs/x/final --text "KING <edit>RICHARD</edit>: ..." --label 1 --tau 0.7
A user error (ConfigError) prints `error: <one line>` and exits with status 2, never a traceback. `--help` of a
subcommand shows its docstring's summary and, per flag, the description its docstring's `Args:` section gives.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
import typing
import warnings
from collections.abc import Callable
from typing import Any

from dlm.registry import ConfigError


def _commands() -> dict[str, Any]:
    """Subcommand name -> typed function, or -> {name: typed function} for a command group (`dlm eval ppl`)."""
    from dlm.data.commands import DATA_COMMANDS
    from dlm.edit.commands import edit_command
    from dlm.eval.commands import EVAL_COMMANDS, LM_EVAL_COMMAND
    from dlm.image.commands import VQ_COMMANDS
    from dlm.sample.commands import infill_command, sample_command
    from dlm.tasks.commands import TASK_COMMANDS
    from dlm.train.commands import finetune_command, train_command
    from dlm.train.distill.commands import distill_command
    from dlm.train.rl.commands import rl_command

    return {"train": train_command, "sample": sample_command, "infill": infill_command, "eval": EVAL_COMMANDS,
            "lm-eval": LM_EVAL_COMMAND, "task": TASK_COMMANDS, "data": DATA_COMMANDS, "edit": edit_command,
            "vq": VQ_COMMANDS, "finetune": finetune_command,
            "rl": rl_command, "distill": distill_command}


def _add_arguments(parser: argparse.ArgumentParser, fn: Callable[..., Any]) -> None:
    hints = typing.get_type_hints(fn)
    docs = argument_docs(fn)
    for name, param in inspect.signature(fn).parameters.items():
        kind = hints.get(name, str)
        flag = "--" + name.replace("_", "-")
        text = docs.get(name, "")
        if name == "overrides":  # free `section.key=value` arguments
            parser.add_argument("overrides", nargs="*", help=text or "config overrides, e.g. train.lr=3e-4")
        elif param.kind is inspect.Parameter.POSITIONAL_ONLY:  # `dlm task train <task>`
            parser.add_argument(name, type=kind, help=text)
        elif kind is bool:
            parser.add_argument(flag, action="store_true", default=param.default, help=_help(text, param.default))
        else:
            base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
            required = param.default is inspect.Parameter.empty
            parser.add_argument(flag, type=_parse_with(base, flag), required=required,
                                default=None if required else param.default,
                                help=_help(text, None if required else param.default, required))


def _help(text: str, default: Any, required: bool = False) -> str:
    text = _escape(text)
    suffix = "(required)" if required else f"(default: {default!r})" if default not in ("", None) else ""
    return f"{text} {suffix}".strip()


def _escape(text: str) -> str:
    """argparse %-formats every help and description string (`%(default)s`): a literal % must be written %%."""
    return text.replace("%", "%%")


def _parse_with(base: type, flag: str) -> Callable[[str], Any]:
    """argparse type that reports a bad value as `error: ...` (exit 2) with the flag's name."""
    def parse(raw: str) -> Any:
        try:
            return base(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expects {base.__name__}, got {raw!r}") from None

    parse.__name__ = base.__name__
    return parse


def argument_docs(fn: Callable[..., Any]) -> dict[str, str]:
    """Parameter name -> its description in the Google-style `Args:` section of fn's docstring (every command
    documents each parameter there; tests/test_cli_help.py checks that every flag has help)."""
    doc = inspect.getdoc(fn) or ""
    names = set(inspect.signature(fn).parameters)
    if "\nArgs:\n" not in f"\n{doc}":
        return {}
    section = doc.split("Args:", 1)[1].split("\n\n", 1)[0]
    found: dict[str, list[str]] = {}
    current = None
    for line in section.splitlines():
        match = re.match(r"^\s*(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line)
        if match and match.group(1) in names:
            current = match.group(1)
            found[current] = [match.group(2)]
        elif current is not None and line.strip():
            found[current].append(line.strip())
    return {name: " ".join(parts) for name, parts in found.items()}


def _summary(fn: Callable[..., Any]) -> str:
    """The first paragraph of fn's docstring, on one line."""
    doc = inspect.getdoc(fn) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def _first_sentence(text: str) -> str:
    return text.split(". ", 1)[0].rstrip(".")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dlm")
    except Exception:  # not installed (run from a source tree)
        from dlm import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlm", description="Discrete diffusion language models.")
    parser.add_argument("--version", action="version", version=f"dlm {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, target in _commands().items():
        if isinstance(target, dict):
            group = sub.add_parser(name, help=f"{name} commands").add_subparsers(dest="subcommand", required=True)
            for sub_name, fn in target.items():
                _add_arguments(group.add_parser(sub_name, help=_escape(_first_sentence(_summary(fn))),
                                                description=_escape(_summary(fn))), fn)
        else:
            _add_arguments(sub.add_parser(name, help=_escape(_first_sentence(_summary(target))),
                                          description=_escape(_summary(target))), target)
    return parser


def parse_arguments(argv: list[str] | None = None) -> dict[str, Any]:
    """argv -> the parsed arguments (command, subcommand, flags, overrides); argparse exits 2 on bad flags."""
    parser = build_parser()
    parsed, extra = parser.parse_known_args(argv)
    args = vars(parsed)
    # `dlm task train <task> --config c a.b=1`: argparse ends the positionals at the first flag; later overrides
    if extra and (args.get("overrides") is None or any(e.startswith("-") or "=" not in e for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args["overrides"] = [*args["overrides"], *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    command = _commands()[args.pop("command")]
    if isinstance(command, dict):
        command = command[args.pop("subcommand")]
    positional = [args.pop(name) for name, param in inspect.signature(command).parameters.items()
                  if param.kind is inspect.Parameter.POSITIONAL_ONLY]
    return report_errors(lambda: command(*positional, **args))


def console_main() -> int:
    """The `dlm` console script: the process is the CLI's own, so it sets process-wide state here (never in main(),
    which tests and library callers run in their process): in a log (stderr not a terminal) the carriage-return
    progress bars of datasets and huggingface_hub are switched off through their environment variables (an explicit
    setting wins); dlm's own loops print plain lines there (dlm/utils/progress.py)."""
    if not sys.stderr.isatty():
        for name in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(name, "1")
    return main()


def report_errors(run: Callable[[], Any]) -> int:
    """run(); a ConfigError prints `error: <one line>` on stderr and gives exit status 2 (else 0). Warnings print
    as one `warning: <message>` line meanwhile."""
    previous, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        run()
    except ConfigError as err:
        sys.stdout.flush()
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = previous
    return 0


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


if __name__ == "__main__":
    sys.exit(console_main())
