"""`dlm-lm-eval`: the `lm_eval` command line with the `dlm` model registered, a drop-in for `lm_eval`.

lm-eval 0.4.x looks models up only in its own registry (no entry-point discovery), so a plain `lm_eval --model dlm`
cannot find a model that lives in another package. This console script (installed with `pip install 'dlm[eval]'`)
imports dlm.eval.harness and hands every argument to lm-eval's own CLI:

    dlm-lm-eval --model dlm --model_args pretrained=DIR,mc_num=128 --tasks lambada_openai --device cpu
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from lm_eval.__main__ import cli_evaluate

        import dlm.eval.harness  # noqa: F401  (registers model "dlm")
    except ImportError:
        print("error: dlm-lm-eval needs lm-eval: pip install 'dlm[eval]' (or pip install lm-eval)", file=sys.stderr)
        return 2
    from dlm.cli import report_errors
    from dlm.eval.device import cpu_threads, model_arg, resolve_device

    model_args = _flag(sys.argv[1:], "--model_args")

    def run() -> None:  # threads are set here, by the entry point, never by the harness model
        with cpu_threads(resolve_device(model_arg(model_args, "device") or _flag(sys.argv[1:], "--device")),
                         model_arg(model_args, "threads") or 0):
            cli_evaluate()

    return report_errors(run)


def _flag(argv: list[str], name: str) -> str:
    """The value of `name VALUE` or `name=VALUE` in argv ("" when absent)."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return ""


if __name__ == "__main__":
    sys.exit(main())
