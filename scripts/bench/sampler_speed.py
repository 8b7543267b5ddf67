"""Sampler speed with top-p: the top-p set from the sorted values alone (utils/categorical.py: nucleus_probs)
against the full sort with indices it replaces (nucleus_by_sort), for the confidence and ancestral samplers.

Both compute the same probabilities bit for bit, so every run checks that "before" and "after" drew the same
tokens. Models: a randomly initialized tiny transformer (d_model 32, 2 layers) at each --vocab, and optionally a
trained checkpoint (--checkpoint; the quickstart BPE model). Per (model, sampler): --runs rounds, the four
(sampler, variant) runs of a model interleaved and their order rotated every round; medians and the median
paired ratio before / after (scripts/bench/harness.py). One thread; absolute times on a shared CPU are inflated by
the other jobs (the load average is recorded): read the ratios.

    python -m scripts.bench.sampler_speed --vocab 2048 8192 --checkpoint runs/shakespeare_mdlm_bpe/final \
        --out benchmarks/sampler_speed
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

import dlm
from dlm.sample import generate
from dlm.utils import categorical
from scripts.bench.harness import median, median_ratio, write_outputs

SAMPLERS = ("confidence", "ancestral")
VARIANTS = {"before": categorical.nucleus_by_sort, "after": categorical.nucleus_probs}
TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "objective.name=masked_elbo"]


def timed(model, sampler, variant: str, args, length: int, seed: int) -> tuple[torch.Tensor, float]:
    """(ids, seconds) of one generate call with the top-p set of `variant`."""
    categorical.nucleus_probs = VARIANTS[variant]  # filtered_probs reads the module attribute
    try:
        generators = [torch.Generator().manual_seed(seed * 1000 + b) for b in range(args.batch)]
        start = time.perf_counter()
        with torch.no_grad():
            ids = generate(model, model.process, sampler, steps=args.steps, shape=(args.batch, length),
                           generator=generators)
        return ids, time.perf_counter() - start
    finally:
        categorical.nucleus_probs = VARIANTS["after"]


def bench_model(name: str, model, length: int, args) -> list[dict]:
    """Every (sampler, variant) of one model over args.runs interleaved rounds -> one row per sampler."""
    combos = [(s, v) for s in SAMPLERS for v in VARIANTS]
    samplers = {s: model.objective.sampler(s, temperature=1.0, top_p=args.top_p) for s in SAMPLERS}
    seconds = {c: [] for c in combos}
    same = {s: True for s in SAMPLERS}
    for r in range(args.runs):
        ids = {}
        for k in range(len(combos)):
            combo = combos[(k + r) % len(combos)]
            ids[combo], t = timed(model, samplers[combo[0]], combo[1], args, length, r)
            seconds[combo].append(t)
        for s in SAMPLERS:
            same[s] &= bool(torch.equal(ids[(s, "before")], ids[(s, "after")]))
        print(f"  {name}: round {r + 1}/{args.runs}", file=sys.stderr, flush=True)
    return [{"model": name, "vocab": model.process.width - 1, "length": length, "sampler": s,
             "seconds_before": median(seconds[(s, "before")]), "seconds_after": median(seconds[(s, "after")]),
             "speedup": median_ratio(seconds[(s, "before")], seconds[(s, "after")]), "same_tokens": same[s],
             "runs_before": seconds[(s, "before")], "runs_after": seconds[(s, "after")]} for s in SAMPLERS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, nargs="*", default=[2048, 8192])
    parser.add_argument("--checkpoint", default=None, help="a trained masked model (optional)")
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/sampler_speed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    before = os.getloadavg()
    rows = []
    for vocab in args.vocab:
        torch.manual_seed(0)
        config = dlm.load_config(None, TINY + [f"model.max_len={args.length}"])
        rows += bench_model(f"tiny_random_v{vocab}", dlm.DiffusionLM.from_config(config, vocab_size=vocab).eval(),
                            args.length, args)
    if args.checkpoint:
        model = dlm.DiffusionLM.from_pretrained(args.checkpoint).eval()
        rows += bench_model(args.checkpoint, model, model.config.data.seq_len, args)
    payload = {"loadavg": {"before": before, "after": os.getloadavg()}, "threads": args.threads,
               "settings": {k: getattr(args, k) for k in ("length", "batch", "steps", "top_p", "runs")}, "rows": rows}
    write_outputs(args.out, payload, command="scripts.bench.sampler_speed", arguments=vars(args))
    for row in rows:
        print(f"{row['model']} {row['sampler']}: {row['seconds_before']:.2f} s -> {row['seconds_after']:.2f} s "
              f"(x{row['speedup']:.2f}, same tokens: {row['same_tokens']})")


if __name__ == "__main__":
    main()
