"""Continued SFT against diffu-GRPO at equal CPU time, from the same SFT checkpoint (issue 25's benchmark).

1. SFT: `dlm task train <task>` with configs/tasks/<objective>.yaml for --sft-steps steps (a model stopped short of
   its plateau), evaluated on the task's shipped test file (--eval-n puzzles, argmax confidence decoding).
2. From that checkpoint, two arms, each given --budget CPU seconds (this process's CPU time, one thread), in
   --rounds equal chunks, evaluated after every chunk (cpu_s: all of it, the SFT arm's regeneration of its
   training rows at each resume included; loop_s: the wall seconds the training loops report):
   (a) more SFT: the same run resumed with more steps (constant lr, so it is one longer run);
   (b) RL: `dlm rl` (diffu-GRPO for a masked model, GRPO for AR) from the SFT checkpoint, resumed chunk by chunk.
Accuracy with 95% Wilson intervals against CPU seconds, the RL reward / KL curves. Writes
runs/posttrain_<task>_<objective>.{json,png} (benchmarks/ with --publish).

    python -m scripts.bench.posttrain --quick                 # seconds: a tiny model, a pipeline check
    python -m scripts.bench.posttrain --task sudoku4x4 --objective mdlm --sft-steps 400 --budget 240
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import torch

import dlm
from dlm.tasks import get_task
from dlm.tasks.commands import task_train_command
from dlm.tasks.evaluate import evaluate
from dlm.train.log import read_metrics
from dlm.train.rl.run import GRPOConfig, rl_train
from scripts.bench.harness import results_path, write_outputs

QUICK_MODEL = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "train.batch_size=16"]


def eval_examples(task, n: int) -> tuple[str, list]:
    """(what they are, the first n puzzles of the task's shipped test file, else n generated with seed 1000)."""
    if task.has_split("test"):
        return f"the first {n} puzzles of the shipped test file {task.eval_files['test']}", task.load("test")[:n]
    return f"{n} generated puzzles (seed 1000; the task ships no file)", task.generate_examples(n, seed=1000)


def accuracy(checkpoint: Path, task, n: int) -> dict:
    model = dlm.DiffusionLM.from_pretrained(str(checkpoint))
    examples = eval_examples(task, n)[1]
    result = evaluate(model, task, examples, batch_size=100)
    return {"accuracy": result["accuracy"], "wilson95": result["wilson95"], "n": result["n"]}


def timed(run) -> tuple[float, float]:
    """(process CPU seconds of run(), the seconds its loop reports spending in total: summary["elapsed_s"])."""
    start = time.process_time()
    summary = run()
    return time.process_time() - start, summary["elapsed_s"]


ARM_LABELS = {"sft": "continued SFT", "rl": "diffu-GRPO (GRPO for AR)"}
FAMILY = {"mdlm": "masked", "ar": "AR"}


def combine(paths: list[Path], *, publish: bool) -> None:
    """posttrain.json: every run's payload; posttrain.png: per task, accuracy against CPU seconds (both arms, masked
    and AR), the RL reward and KL against RL steps."""
    import json

    runs: list[dict] = []
    for path in paths:  # the two arms of one run, measured by two processes, become one run
        run = json.loads(path.read_text())
        key = (run["task"], run["objective"], run.get("tag", ""))
        same = next((r for r in runs if (r["task"], r["objective"], r.get("tag", "")) == key), None)
        if same is None:
            runs.append(run)
        else:
            same["arms"].update(run["arms"])
            same["rl_curves"] = same["rl_curves"] or run["rl_curves"]
    tasks = list(dict.fromkeys(run["task"] for run in runs))

    def plot(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(tasks), 3, figsize=(15, 4 * len(tasks)), squeeze=False)
        for row, name in zip(axes, tasks):
            for index, run in enumerate(r for r in runs if r["task"] == name):
                family = FAMILY.get(run["objective"], run["objective"]) + run.get("tag", "")
                color = f"C{index}"
                for arm, points in run["arms"].items():
                    x = [p["cpu_s"] for p in points]
                    y = [100 * p["accuracy"] for p in points]
                    err = [[100 * (p["accuracy"] - p["wilson95"][0]) for p in points],
                           [100 * (p["wilson95"][1] - p["accuracy"]) for p in points]]
                    row[0].errorbar(x, y, yerr=err, color=color, marker="o" if arm == "sft" else "s", capsize=3,
                                    linestyle=":" if arm == "sft" else "-", label=f"{family}: {ARM_LABELS[arm]}")
                curves = run["rl_curves"]
                window = 8 * run["rl"]["mu"]  # a moving mean over 8 batches of generations
                steps = [c["step"] for c in curves][window - 1:]
                for col, key in ((1, "reward"), (2, "kl")):
                    values = [c[key] for c in curves]
                    smooth = [sum(values[i - window + 1 : i + 1]) / window for i in range(window - 1, len(values))]
                    row[col].plot(steps, smooth, color=color, label=family)
            row[0].set(xlabel="CPU seconds after the SFT checkpoint (one thread)", ylabel="accuracy (%), 95% Wilson",
                       title=f"{name}: equal CPU time from one SFT checkpoint")
            row[1].set(xlabel="RL step", ylabel="rollout reward (moving mean, 8 batches)", title=f"{name}: RL reward")
            row[2].set(xlabel="RL step", ylabel="KL to the SFT model (k3, moving mean)", title=f"{name}: KL")
            for ax in row:
                ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

    write_outputs(results_path("posttrain", publish=publish), {"runs": runs}, plot, command="scripts.bench.posttrain",
                  arguments={"combine": [str(p) for p in paths]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="sudoku4x4")
    parser.add_argument("--objective", default="mdlm", help="configs/tasks/<objective>.yaml: mdlm or ar")
    parser.add_argument("--sft-steps", type=int, default=600)
    parser.add_argument("--budget", type=float, default=600.0, help="CPU seconds per arm")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--eval-n", type=int, default=200)
    parser.add_argument("--train-rows", type=int, default=5000, help="generated SFT puzzles (rebuilt at each resume)")
    parser.add_argument("--rl-lr", type=float, default=1e-4)
    parser.add_argument("--rl-mu", type=int, default=8, help="inner updates per batch of generations (d1: 8)")
    parser.add_argument("--rl-reward", default="checker", help="checker or partial (Sudoku: d1's partial credit)")
    parser.add_argument("--rl-format-weight", type=float, default=0.0)
    parser.add_argument("--rl-prompts", type=int, default=4)
    parser.add_argument("--rl-group-size", type=int, default=6)
    parser.add_argument("--rl-sampler", default="confidence",
                        help="rollout sampler: d1 decodes by confidence with Gumbel noise, as `task eval` decodes")
    parser.add_argument("--rl-tokens-per-step", type=int, default=2, help="rollout tokens per step (d1: 2)")
    parser.add_argument("--sft-increment", type=int, default=50, help="SFT steps per resume of the SFT arm")
    parser.add_argument("--rl-increment", type=int, default=16, help="RL steps per resume (a multiple of --rl-mu)")
    parser.add_argument("--model", default="model.d_model=64 model.n_layers=2",
                        help="model overrides (the 113k-parameter backbone of benchmarks/README.md#reasoning-tasks)")
    parser.add_argument("--quick", action="store_true", help="a tiny model and budget: checks the pipeline")
    parser.add_argument("--publish", action="store_true", help="write under benchmarks/ instead of runs/")
    parser.add_argument("--work", default="runs/posttrain_work")
    parser.add_argument("--reuse-sft", action="store_true",
                        help="start from the SFT run already in <work>/<name>/sft (trained with the same settings)")
    parser.add_argument("--arms", default="sft,rl", help="which arms this process runs: sft,rl or one of them "
                        "(two processes, one per arm, train the same SFT checkpoint; --combine merges them)")
    parser.add_argument("--rl-only-from", default="", metavar="CHECKPOINT",
                        help="an RL variant alone: the RL arm from this SFT checkpoint (another run's sft_checkpoint)")
    parser.add_argument("--tag", default="", help="appended to the run's name (its work dir and JSON)")
    parser.add_argument("--combine", nargs="+", default=[], metavar="JSON",
                        help="merge finished runs' JSON files into posttrain.json + one PNG, and stop")
    args = parser.parse_args()
    if args.combine:
        combine([Path(path) for path in args.combine], publish=args.publish)
        return
    if args.quick:
        args.sft_steps, args.budget, args.rounds, args.eval_n, args.train_rows = 40, 6.0, 2, 20, 500
        args.sft_increment, args.rl_increment = 10, 2
    torch.set_num_threads(1)  # a script owns its process: CPU seconds of one thread
    load_start = os.getloadavg()
    task, name = get_task(args.task), f"{args.task}_{args.objective}{args.tag}"
    part = name if args.arms == "sft,rl" else f"{name}_arm-{args.arms}"  # a process's own work dir and JSON
    work = Path(args.work) / part
    for old in (["rl", "sft_checkpoint"] if args.reuse_sft else [""]):
        shutil.rmtree(work / old, ignore_errors=True)
    config = f"configs/tasks/{args.objective}.yaml"
    model_overrides = QUICK_MODEL if args.quick else args.model.split()
    common = [*model_overrides, "train.progress=false", "train.eval_every=0", "train.save_every=0",
              "train.lr_schedule=constant"]
    sft_dir = work / "sft"
    if args.rl_only_from:
        sft_cpu, sft_loop_s = None, 0.0
    elif args.reuse_sft:  # its CPU time is not known here; its loop's seconds are in its metrics
        sft_cpu, sft_loop_s = None, read_metrics(sft_dir / "metrics.jsonl")[-1]["elapsed_s"]
    else:
        sft_cpu, sft_loop_s = timed(lambda: task_train_command(args.task, config=config, train_rows=args.train_rows,
                                                               overrides=[*common, f"train.steps={args.sft_steps}",
                                                                          f"train.out_dir={sft_dir}"]))
    start_model = work / "sft_checkpoint"  # RL's start and reference; the SFT run goes on in place
    shutil.copytree(args.rl_only_from or sft_dir / "final", start_model)
    start = accuracy(start_model, task, args.eval_n)
    arms = {"sft": [{"cpu_s": 0.0, **start}], "rl": [{"cpu_s": 0.0, **start}]}

    chunk_s = args.budget / args.rounds
    sft_steps, rl_steps = [args.sft_steps], [0]
    rl_cfg = dict(mu=args.rl_mu, lr=args.rl_lr, reward=args.rl_reward, format_weight=args.rl_format_weight,
                  prompts=args.rl_prompts, group_size=args.rl_group_size, sampler=args.rl_sampler,
                  sampler_steps=-(-task.answer_len // args.rl_tokens_per_step), save_every=args.rl_increment)

    def more_sft() -> tuple[float, float]:
        sft_steps[0] += args.sft_increment
        cpu, loop_s = timed(lambda: task_train_command(
            args.task, config=config, resume=True, train_rows=args.train_rows,
            overrides=[*common, f"train.steps={sft_steps[0]}", f"train.out_dir={sft_dir}"]))
        return cpu, loop_s - sft_loop_s

    def more_rl() -> tuple[float, float]:
        rl_steps[0] += args.rl_increment
        return timed(lambda: rl_train(task, start_model, work / "rl", GRPOConfig(steps=rl_steps[0], **rl_cfg),
                                      resume=rl_steps[0] > args.rl_increment))

    chosen = ["rl"] if args.rl_only_from else args.arms.split(",")
    arms = {arm: points for arm, points in arms.items() if arm in chosen}
    for arm, run_chunk, final, steps in [("sft", more_sft, sft_dir / "final", sft_steps),
                                         ("rl", more_rl, work / "rl/final", rl_steps)]:
        if arm not in chosen:
            continue
        spent = loop_s = 0.0
        for _ in range(args.rounds):
            round_start = spent
            while spent - round_start < chunk_s:
                cpu, loop_s = run_chunk()
                spent += cpu
            arms[arm].append({"cpu_s": spent, "loop_s": loop_s, "steps": steps[0],
                               **accuracy(final, task, args.eval_n)})
    eval_name = eval_examples(task, args.eval_n)[0]
    rl_dir = work / "rl"
    curves = read_metrics(rl_dir / "metrics.jsonl") if "rl" in arms else []
    payload = {"task": args.task, "objective": args.objective, "sft_steps": args.sft_steps, "sft_cpu_s": sft_cpu,
               "train_rows": args.train_rows, "tag": args.tag,
               "rl_only_from": args.rl_only_from,
               "budget_cpu_s": args.budget, "rl": rl_cfg, "eval": eval_name, "arms": arms,
               "loadavg": {"start": load_start, "end": os.getloadavg()},
               "rl_curves": [{k: r[k] for k in ("step", "reward", "accuracy", "kl", "clip_fraction", "reward_std")}
                             for r in curves]}

    def plot(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for name, points in arms.items():
            x = [p["cpu_s"] for p in points]
            y = [100 * p["accuracy"] for p in points]
            low = [100 * (p["accuracy"] - p["wilson95"][0]) for p in points]
            high = [100 * (p["wilson95"][1] - p["accuracy"]) for p in points]
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3,
                        label="continued SFT" if name == "sft" else "diffu-GRPO / GRPO")
        ax.set(xlabel="CPU seconds after the SFT checkpoint", ylabel=f"{args.task} accuracy (%)",
               title=f"{args.task}, {args.objective}: equal CPU time")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

    out = results_path(f"posttrain_{part}", publish=args.publish)
    write_outputs(out, payload, plot, command="scripts.bench.posttrain", arguments=vars(args))


if __name__ == "__main__":
    main()
