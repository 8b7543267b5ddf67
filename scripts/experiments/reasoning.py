"""Reasoning experiment: diffusion families against autoregression on one backbone, accuracy vs training tokens.

For every task and family it trains with `dlm task train` (the ordinary training loop, constant learning rate after
warm-up), stopping at each milestone step to solve the evaluation puzzles with the current weights (the run is then
resumed, which with a constant learning rate equals one longer run), and writes RUNS/reasoning.json after every
evaluation plus RUNS/reasoning.png (accuracy vs training tokens, one panel per task); with --publish they go to
benchmarks/ instead (the shipped results). Every family sees the same rows, the same batch and the same steps: the
same token budget.

    python -m scripts.experiments.reasoning --tasks sudoku4x4 --families mdlm,ar --milestones 250,500,1000
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

import dlm
from dlm.tasks import get_task
from dlm.tasks.commands import task_train_command
from dlm.tasks.evaluate import evaluate
from scripts.bench.harness import results_path

ROOT = Path(__file__).resolve().parents[2]
# family -> (config, extra overrides, sampler used to solve)
FAMILIES = {
    "mdlm": ("configs/tasks/mdlm.yaml", [], "confidence"),
    "mdlm_mgdm": ("configs/tasks/mdlm.yaml", ["objective.token_reweight_gamma=1.0"],
                  "confidence"),
    "ar": ("configs/tasks/ar.yaml", [], "autoregressive"),
    "udlm": ("configs/tasks/udlm.yaml", [], "analytic"),
    "sedd": ("configs/tasks/sedd.yaml", [], "confidence"),  # x0 probabilities from the score: easy-first too
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="sudoku4x4,mult4x4")
    parser.add_argument("--families", default="mdlm,ar,udlm,sedd")
    parser.add_argument("--milestones", default="250,500,1000", help="steps at which to evaluate (comma list)")
    parser.add_argument("--eval-limit", type=int, default=500, help="evaluation puzzles per point (0: the whole file)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--overrides", default="", help="extra config overrides for every run, space separated")
    parser.add_argument("--runs", default="runs/reasoning")
    parser.add_argument("--out", default="", help="results JSON (default: RUNS/reasoning.json, or "
                        "benchmarks/reasoning.json with --publish)")
    parser.add_argument("--plot", default="", help="accuracy plot (default: beside --out, .png)")
    parser.add_argument("--publish", action="store_true", help="write the default results into benchmarks/")
    parser.add_argument("--extend", action="store_true", help="continue the runs already in --runs to the (later) "
                        "milestones, adding to the points in --out (constant lr: equals one longer run)")
    parser.add_argument("--merge", default="", help="comma list of result JSONs to combine into --out and plot; no "
                        "training (for runs made in separate invocations)")
    args = parser.parse_args(argv)
    args.out = args.out or str(results_path("reasoning.json", publish=args.publish, runs=args.runs))
    args.plot = args.plot or str(Path(args.out).with_suffix(".png"))
    return args


def run_family(task: str, family: str, args: argparse.Namespace, record, train_cpu_s: float = 0.0) -> None:
    config, extra, sampler = FAMILIES[family]
    out_dir = Path(args.runs) / f"{task}_{family}"
    if not args.extend:
        shutil.rmtree(out_dir, ignore_errors=True)
    spec = get_task(task)
    examples = spec.load("test") if spec.has_split("test") else spec.generate_examples(1000, seed=1000)
    examples = examples[: args.eval_limit] if args.eval_limit else examples
    base = [f"train.out_dir={out_dir}", f"train.batch_size={args.batch_size}", "train.eval_every=0",
            "train.save_every=0", "train.progress=false", "train.log_every=50", *extra, *args.overrides.split()]
    # train_cpu_s: CPU seconds of training so far (--extend starts from the run's last point); on a shared, niced
    # machine wall time says little
    for index, steps in enumerate(int(s) for s in args.milestones.split(",")):
        cpu_start = time.process_time()
        summary = task_train_command(task, str(ROOT / config), [*base, f"train.steps={steps}"],
                                     resume=args.extend or index > 0)
        train_cpu_s += time.process_time() - cpu_start
        model = dlm.DiffusionLM.from_pretrained(summary["final_dir"])
        result = evaluate(model, spec, examples, sampler=sampler, batch_size=100)
        record({"task": task, "family": family, "sampler": result["sampler"], "steps": steps,
                "tokens": summary["tokens_seen"], "train_elapsed_s": summary["elapsed_s"],
                "train_cpu_s": train_cpu_s, "tokens_per_s": summary["tokens_per_s"], "val_nll": summary["val_nll"],
                "num_parameters": summary["num_parameters"], "eval_n": result["n"], "accuracy": result["accuracy"],
                "wilson95": result["wilson95"], "by_difficulty": result["by_difficulty"],
                "samples_per_s": result["samples_per_s"], "examples": result["examples"][:2]})


def plot(points: list[dict], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    tasks = sorted({p["task"] for p in points})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for family in sorted({p["family"] for p in points if p["task"] == task}):
            rows = sorted((p for p in points if p["task"] == task and p["family"] == family), key=lambda p: p["tokens"])
            x = [p["tokens"] / 1e6 for p in rows]
            y = [100 * p["accuracy"] for p in rows]
            lo = [max(0.0, 100 * (p["accuracy"] - p["wilson95"][0])) for p in rows]
            hi = [max(0.0, 100 * (p["wilson95"][1] - p["accuracy"])) for p in rows]
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=family)
        ax.set(title=task, xlabel="training tokens (M)", ylabel="solved (%)", ylim=(-2, 102), xlim=(0, None))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def _as_list(settings: dict | list) -> list:
    return settings if isinstance(settings, list) else [settings]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge:
        parts = [json.loads(Path(name).read_text()) for name in args.merge.split(",")]
        points = [point for part in parts for point in part["points"]]
        merged = {"settings": [s for part in parts for s in _as_list(part["settings"])], "points": points}
        out.write_text(json.dumps(merged, indent=2) + "\n")
        plot(merged["points"], args.plot)
        return
    earlier = json.loads(out.read_text()) if args.extend and out.is_file() else {"settings": [], "points": []}
    points: list[dict] = earlier["points"]
    settings = [*_as_list(earlier["settings"]),
                {**vars(args), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}]

    def record(point: dict) -> None:
        points.append(point)
        out.write_text(json.dumps({"settings": settings, "points": points}, indent=2) + "\n")
        lo, hi = point["wilson95"]
        print(f"== {point['task']} {point['family']} step {point['steps']} ({point['tokens'] / 1e6:.2f}M tokens): "
              f"{point['accuracy']:.1%} [{lo:.1%}, {hi:.1%}] of {point['eval_n']}", flush=True)

    for task in args.tasks.split(","):
        for family in args.families.split(","):
            done = [p.get("train_cpu_s", 0.0) for p in points if p["task"] == task and p["family"] == family]
            run_family(task, family, args, record, max(done, default=0.0) if args.extend else 0.0)
    plot(points, args.plot)


if __name__ == "__main__":
    main()
