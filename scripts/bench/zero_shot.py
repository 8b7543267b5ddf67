"""Zero-shot perplexity table of several checkpoints on PTB, WikiText-2, WikiText-103 and LM1B (local copies).

    python -m scripts.bench.zero_shot runs/mdlm/final runs/ar/final --out bench_zero_shot.json

Every checkpoint is scored on the same blocks (its own tokenizer, its training seq_len and packing mode); the
table gives PPL ± standard error (Monte Carlo, delta method), bits per token and, when an autoregressive
checkpoint is among them and shares the tokenizer, the diffusion/AR perplexity ratio. The JSON holds the rows,
the ratios and the provenance (git commit, weights sha256, arguments, seed) to reproduce each number.
Defaults follow MDLM's splits where a local copy has them (validation for PTB / WikiText); the local LM1B copy
is the held-out dev set (lm1b@validation), not LM1B's test shard.
"""

from __future__ import annotations

import argparse
import sys

from dlm.data.paths import data_dir
from dlm.eval.report import format_table, provenance, write_json
from dlm.eval.zero_shot import evaluate_checkpoints
from dlm.registry import ConfigError

DATASETS = "ptb,wikitext2,wikitext103,lm1b@validation"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="dlm checkpoint dirs (diffusion and/or AR)")
    parser.add_argument("--datasets", default=DATASETS, help=f"comma-separated (default: {DATASETS})")
    parser.add_argument("--data-dir", default=str(data_dir()), help="local corpora (default: %(default)s)")
    parser.add_argument("--estimator", default="mdlm", choices=["mdlm", "many"])
    parser.add_argument("--n-t", type=int, default=1, help="mdlm: passes; many: t per sequence")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-blocks", type=int, default=0, help="blocks per dataset (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="")
    parser.add_argument("--out", default="bench_zero_shot.json")
    args = parser.parse_args(argv)
    try:
        table = evaluate_checkpoints(args.checkpoints, [d for d in args.datasets.split(",") if d],
                                     data_dir=args.data_dir, estimator=args.estimator, n_t=args.n_t,
                                     batch_size=args.batch_size, max_blocks=args.max_blocks, seed=args.seed,
                                     device=args.device)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_json(args.out, {"provenance": provenance("scripts/bench/zero_shot.py", vars(args)), **table})
    print(format_table(table["rows"], table["ratios"]))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
