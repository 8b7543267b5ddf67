"""Duo's Gaussian-relaxed curriculum (arXiv 2506.10892 §3.2, docs/uniform.md#curriculum) A/B: does it help a
uniform-state model at our scale?

The char-level Tiny Shakespeare UDLM (configs/runs/shakespeare_udlm.yaml, narrowed to d_model 128, 3 layers, 4 heads)
is trained for the same steps, batches and seeds in every arm:
  plain           the discrete UDLM ELBO throughout;
  anneal          the curriculum over the first half of the steps with Duo's default temperatures (log10 tau -1 -> -2,
                  configs/algo/duo.yaml), then the discrete loss;
  sharp           the curriculum over the first half at log10 tau = -3 constant (Duo's OpenWebText recipe, 500k of
                  its 1M steps).
  null            the curriculum's draw at log10 tau = -10 over the first half: the input is exactly one_hot(z_t), so
                  this is the plain loss on another random stream (tests/objectives/test_curriculum.py), the control
                  that shows how far two arms differ by their random draws alone.
Reported: the held-out discrete ELBO (the training loop's validation: objective.curriculum never applies there) at
every train.eval_every steps, per seed, with the same validation draws (generators of a fixed seed) for every arm,
so arm differences at one seed are paired; and each curriculum arm's mean difference to `plain` at the last step.
One thread per process; --jobs runs side by side. Trained runs are kept under --runs and reused when their settings
match. Wall times on a shared CPU are inflated by other jobs; the load average is in the JSON.

    python -m scripts.bench.curriculum --quick                # seconds: a pipeline check on a tiny backbone
    python -m scripts.bench.curriculum --publish --jobs 2     # benchmarks/curriculum.json + .png
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from scripts.bench.harness import REPO, results_path, write_outputs

CONFIG = REPO / "configs" / "runs" / "shakespeare_udlm.yaml"
# arm -> (log10 tau at the start, at the end) of a curriculum over the first half of the steps; None: no curriculum
ARMS = {"plain": None, "anneal": (-1.0, -2.0), "sharp": (-3.0, -3.0), "null": (-10.0, -10.0)}
PRESETS = {
    "full": {"model": ["model=small", "model.d_model=128", "model.n_layers=3", "model.n_heads=4"], "seq_len": 128,
             "batch_size": 32, "steps": 800, "eval_every": 100, "eval_batches": 16, "seeds": [0, 1]},
    "quick": {"model": ["model=tiny"], "seq_len": 32, "batch_size": 8, "steps": 4, "eval_every": 2, "eval_batches": 1,
              "seeds": [0]},
}


def arm_overrides(arm: str, steps: int) -> list[str]:
    """The objective.curriculum overrides of an arm (none for plain): the first half of `steps` relaxed."""
    temperatures = ARMS[arm]
    if temperatures is None:
        return []
    return [f"objective.curriculum.end={steps // 2}", f"objective.curriculum.tau_log10_start={temperatures[0]}",
            f"objective.curriculum.tau_log10_end={temperatures[1]}"]


def run_overrides(settings: dict, arm: str, seed: int, out_dir: Path) -> list[str]:
    """Every override of one run: the shared backbone, data, budget and seed, then the arm's curriculum."""
    steps = settings["steps"]
    return [*settings["model"], f"data.seq_len={settings['seq_len']}", f"train.batch_size={settings['batch_size']}",
            f"train.steps={steps}", f"train.warmup_steps={max(1, steps // 16)}",
            f"train.eval_every={settings['eval_every']}", f"train.eval_batches={settings['eval_batches']}",
            f"train.save_every={steps}", "train.log_every=10", "train.progress=false", f"train.seed={seed}",
            f"train.out_dir={out_dir}", *arm_overrides(arm, steps)]


def train_arm(arm: str, seed: int, settings: dict, runs: str) -> dict:
    """Train (or reuse) one arm at one seed in a worker process (one thread) -> its validation curve."""
    from dlm.config import load_config
    from dlm.train.log import METRICS_FILE, read_metrics
    from dlm.train.loop import train

    torch.set_num_threads(1)
    out_dir = Path(runs) / f"{arm}_seed{seed}"
    spec = {"config": str(CONFIG.relative_to(REPO)), "overrides": run_overrides(settings, arm, seed, out_dir)}
    marker = out_dir / "bench_spec.json"
    if not ((out_dir / "final").is_dir() and marker.is_file() and json.loads(marker.read_text()) == spec):
        shutil.rmtree(out_dir, ignore_errors=True)  # an unfinished or different run
        start = time.time()
        train(load_config(CONFIG, spec["overrides"]))
        (out_dir / "train_seconds.txt").write_text(f"{time.time() - start:.1f}\n")
        marker.write_text(json.dumps(spec) + "\n")
    records = read_metrics(out_dir / METRICS_FILE)
    return {"arm": arm, "seed": seed, "curriculum": arm_overrides(arm, settings["steps"]),
            "val_nll": {int(r["step"]): r["val_nll"] for r in records if "val_nll" in r},
            "train_seconds": float((out_dir / "train_seconds.txt").read_text())}


def summarize(rows: list[dict]) -> dict:
    """Per curriculum arm: its last-step val_nll minus plain's at the same seed (paired), their mean and its standard
    error over seeds (stdev / sqrt(seeds); None with one seed)."""
    last = max(next(iter(rows))["val_nll"])
    plain = {r["seed"]: r["val_nll"][last] for r in rows if r["arm"] == "plain"}
    out = {}
    for arm in ARMS:
        if arm == "plain":
            continue
        deltas = [r["val_nll"][last] - plain[r["seed"]] for r in rows if r["arm"] == arm and r["seed"] in plain]
        if deltas:
            se = statistics.stdev(deltas) / len(deltas) ** 0.5 if len(deltas) > 1 else None
            out[arm] = {"step": last, "delta_val_nll_vs_plain": deltas, "mean_delta": statistics.fmean(deltas),
                        "mean_delta_se": se}
    return out


def plot(payload: dict, path: Path) -> None:
    """Held-out bound against steps: each arm's mean over seeds (thick, its mean last-step difference to plain in
    the legend) and each seed (thin)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"plain": "black", "anneal": "tab:blue", "sharp": "tab:orange", "null": "tab:grey"}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm in dict.fromkeys(r["arm"] for r in payload["rows"]):
        curves = [r["val_nll"] for r in payload["rows"] if r["arm"] == arm]
        steps = sorted(curves[0])
        for curve in curves:
            ax.plot(steps, [curve[s] for s in steps], color=colors[arm], alpha=0.25, linewidth=0.8)
        delta = payload["summary"].get(arm, {}).get("mean_delta")
        label = arm if delta is None else f"{arm} ({delta:+.3f} vs plain)"
        ax.plot(steps, [statistics.fmean(c[s] for c in curves) for s in steps], color=colors[arm], linewidth=2,
                label=f"{label}, {len(curves)} seeds")
    end = payload["settings"]["steps"] // 2
    ax.axvline(end, color="grey", linewidth=0.8, linestyle=":")
    ax.text(end, ax.get_ylim()[1], " curriculum ends", va="top", fontsize=8, color="grey")
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out discrete ELBO (nats/char)")
    ax.set_title("Duo's curriculum, char-level Tiny Shakespeare UDLM")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny backbone, a few steps (a pipeline check)")
    parser.add_argument("--steps", type=int, default=0, help="training steps of every run (0: the preset's)")
    parser.add_argument("--seeds", default="", help="comma-separated train.seed values (default: the preset's)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated arms from {','.join(ARMS)}")
    parser.add_argument("--jobs", type=int, default=1, help="training processes side by side (one thread each)")
    parser.add_argument("--runs", default="", help="where the trained runs go (default runs/bench_curriculum[_quick])")
    parser.add_argument("--out", default="", help="writes OUT.json and OUT.png (default runs/curriculum)")
    parser.add_argument("--publish", action="store_true", help="write benchmarks/curriculum instead")
    args = parser.parse_args(argv)
    arms = args.arms.split(",")
    if not set(arms) <= set(ARMS):
        parser.error(f"unknown arms {sorted(set(arms) - set(ARMS))}; choose from {','.join(ARMS)}")
    mode = "quick" if args.quick else "full"
    settings = {**PRESETS[mode], **({"steps": args.steps} if args.steps else {})}
    if args.seeds:
        settings["seeds"] = [int(s) for s in args.seeds.split(",")]
    runs = Path(args.runs or REPO / "runs" / f"bench_curriculum{'_quick' if args.quick else ''}")
    runs.mkdir(parents=True, exist_ok=True)
    load = [os.getloadavg()]
    jobs = [(arm, seed) for seed in settings["seeds"] for arm in arms]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(train_arm, *zip(*jobs), [settings] * len(jobs), [str(runs)] * len(jobs)))
    load.append(os.getloadavg())
    payload = {"mode": mode, "settings": settings, "config": str(CONFIG.relative_to(REPO)),
               "data": "char-level Tiny Shakespeare, data.val_fraction held out",
               "metric": "training-loop validation: the discrete UDLM ELBO, train.eval_batches batches, one t per "
                         "sequence, generators of a fixed seed (the same draws for every arm)",
               "rows": rows, "summary": summarize(rows), "loadavg": load, "threads_per_run": 1}
    out = args.out or results_path("curriculum", publish=args.publish)
    write_outputs(out, payload, lambda path: plot(payload, path), command="python -m scripts.bench.curriculum",
                  arguments=vars(args))
    return payload


if __name__ == "__main__":
    main()
