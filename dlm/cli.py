"""`dlm <command> ...`: each subcommand is one typed function; its flags are derived from the signature.

    dlm train --config configs/runs/shakespeare_mdlm.yaml train.steps=200 [--resume]
    dlm sample --checkpoint runs/x/final --sampler ancestral --steps 128 --num-samples 4 --length 128
    dlm infill --checkpoint runs/x/final --text "To be, or <mask:12> the question"
    dlm eval ppl --checkpoint runs/x/final --datasets ptb,wikitext2
    dlm edit --checkpoint runs/x/final --text "KING <edit>RICHARD</edit>: ..." --label 1 --tau 0.7
A user error (ConfigError) prints `error: <one line>` and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import typing
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
    from dlm.train.commands import train_command

    return {"train": train_command, "sample": sample_command, "infill": infill_command, "eval": EVAL_COMMANDS,
            "lm-eval": LM_EVAL_COMMAND, "task": TASK_COMMANDS, "data": DATA_COMMANDS, "edit": edit_command,
            "vq": VQ_COMMANDS}


def _add_arguments(parser: argparse.ArgumentParser, fn: Callable[..., Any]) -> None:
    hints = typing.get_type_hints(fn)
    for name, param in inspect.signature(fn).parameters.items():
        kind = hints.get(name, str)
        flag = "--" + name.replace("_", "-")
        if name == "overrides":  # free `section.key=value` arguments
            parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.lr=3e-4")
        elif param.kind is inspect.Parameter.POSITIONAL_ONLY:  # `dlm task train <task>`
            parser.add_argument(name, type=kind)
        elif kind is bool:
            parser.add_argument(flag, action="store_true", default=param.default, help=f"(default: {param.default})")
        else:
            base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
            required = param.default is inspect.Parameter.empty
            parser.add_argument(flag, type=base, required=required, default=None if required else param.default,
                                help=None if required else f"(default: {param.default})")


def _summary(fn: Callable[..., Any]) -> str:
    return (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlm", description="Discrete diffusion language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, target in _commands().items():
        if isinstance(target, dict):
            group = sub.add_parser(name, help=f"{name} commands").add_subparsers(dest="subcommand", required=True)
            for sub_name, fn in target.items():
                _add_arguments(group.add_parser(sub_name, help=_summary(fn)), fn)
        else:
            _add_arguments(sub.add_parser(name, help=_summary(target)), target)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parsed, extra = parser.parse_known_args(argv)
    args = vars(parsed)
    # `dlm task train <task> --config c a.b=1`: argparse ends the positionals at the first flag; later overrides
    if extra and (args.get("overrides") is None or any(e.startswith("-") or "=" not in e for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args["overrides"] = [*args["overrides"], *extra]
    command = _commands()[args.pop("command")]
    if isinstance(command, dict):
        command = command[args.pop("subcommand")]
    positional = [args.pop(name) for name, param in inspect.signature(command).parameters.items()
                  if param.kind is inspect.Parameter.POSITIONAL_ONLY]
    return report_errors(lambda: command(*positional, **args))


def report_errors(run: Callable[[], Any]) -> int:
    """run(); a ConfigError prints `error: <one line>` on stderr and gives exit status 2 (else 0)."""
    try:
        run()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
