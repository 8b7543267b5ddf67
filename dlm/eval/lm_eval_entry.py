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

    return report_errors(cli_evaluate)


if __name__ == "__main__":
    sys.exit(main())
