"""Generative perplexity and unigram entropy versus sampling steps, per sampler, on a trained model.

    python -m scripts.bench.genppl_steps runs/shakespeare_mdlm/final runs/zero_shot/ar/final
Samples are scored by the reference (an AR dlm checkpoint or a HF causal LM); writes JSON and a PNG plot.
Low entropy beside a low gen-PPL flags degenerate samples.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from dlm.eval.commands import genppl_command
from scripts.bench.harness import write_outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("reference")
    parser.add_argument("--samplers", default="ancestral,tau_leaping,theta_trapezoidal,confidence")
    parser.add_argument("--steps", default="8,16,32,64,128")
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--out", default="runs/bench/bench_genppl_steps", help="writes OUT.json and OUT.png")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sampler in args.samplers.split(","):
            for steps in map(int, args.steps.split(",")):
                path = Path(tmp) / f"{sampler}_{steps}.json"
                genppl_command(args.checkpoint, args.reference, num_samples=args.num_samples, length=args.length,
                               steps=steps, sampler=sampler, seed=0, out=str(path))
                result = json.loads(path.read_text())["result"]
                rows.append({"sampler": sampler, "steps": steps, "gen_ppl": result["gen_ppl"],
                             "unigram_entropy": result["entropy"]})
    write_outputs(args.out, {"checkpoint": args.checkpoint, "reference": args.reference, "rows": rows},
                  lambda path: plot(rows, path), command="scripts.bench.genppl_steps", arguments=vars(args))
    for row in rows:
        print(f"{row['sampler']:<18} {row['steps']:>4} steps  gen-PPL {row['gen_ppl']:8.2f}  "
              f"entropy {row['unigram_entropy']:.3f}")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for sampler in dict.fromkeys(r["sampler"] for r in rows):
        mine = [r for r in rows if r["sampler"] == sampler]
        for ax, key in zip(axes, ("gen_ppl", "unigram_entropy")):
            ax.plot([r["steps"] for r in mine], [r[key] for r in mine], marker="o", label=sampler)
    for ax, label in zip(axes, ("generative perplexity (reference AR)", "unigram entropy (nats)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sampling steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
