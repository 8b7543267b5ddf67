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


def accuracy(checkpoint: Path, task, n: int) -> dict:
    model = dlm.DiffusionLM.from_pretrained(str(checkpoint))
    examples = (task.load("test") if task.has_split("test") else task.generate_examples(n, seed=1000))[:n]
    result = evaluate(model, task, examples, batch_size=100)
    return {"accuracy": result["accuracy"], "wilson95": result["wilson95"], "n": result["n"]}


def timed(run) -> tuple[float, float]:
    """(process CPU seconds of run(), the seconds its loop reports spending in total: summary["elapsed_s"])."""
    start = time.process_time()
    summary = run()
    return time.process_time() - start, summary["elapsed_s"]


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
    parser.add_argument("--sft-increment", type=int, default=50, help="SFT steps per resume of the SFT arm")
    parser.add_argument("--rl-increment", type=int, default=20, help="RL steps per resume (a multiple of mu = 2)")
    parser.add_argument("--model", default="model.d_model=64 model.n_layers=2",
                        help="model overrides (the 113k-parameter backbone of benchmarks/README.md#reasoning-tasks)")
    parser.add_argument("--quick", action="store_true", help="a tiny model and budget: checks the pipeline")
    parser.add_argument("--publish", action="store_true", help="write under benchmarks/ instead of runs/")
    parser.add_argument("--work", default="runs/posttrain_work")
    args = parser.parse_args()
    if args.quick:
        args.sft_steps, args.budget, args.rounds, args.eval_n, args.train_rows = 40, 6.0, 2, 20, 500
        args.sft_increment, args.rl_increment = 10, 2
    torch.set_num_threads(1)  # a script owns its process: CPU seconds of one thread
    task, work = get_task(args.task), Path(args.work) / f"{args.task}_{args.objective}"
    shutil.rmtree(work, ignore_errors=True)
    config = f"configs/tasks/{args.objective}.yaml"
    model_overrides = QUICK_MODEL if args.quick else args.model.split()
    common = [*model_overrides, "train.progress=false", "train.eval_every=0", "train.save_every=0",
              "train.lr_schedule=constant"]
    sft_dir = work / "sft"
    sft_cpu, sft_loop_s = timed(lambda: task_train_command(args.task, config=config, train_rows=args.train_rows,
                                                           overrides=[
        *common, f"train.steps={args.sft_steps}", f"train.out_dir={sft_dir}"]))
    start_model = work / "sft_checkpoint"  # RL's start and reference; the SFT run goes on in place
    shutil.copytree(sft_dir / "final", start_model)
    start = accuracy(start_model, task, args.eval_n)
    arms = {"sft": [{"cpu_s": 0.0, **start}], "rl": [{"cpu_s": 0.0, **start}]}

    chunk_s = args.budget / args.rounds
    sft_steps, rl_steps, mu = [args.sft_steps], [0], 2

    def more_sft() -> tuple[float, float]:
        sft_steps[0] += args.sft_increment
        cpu, loop_s = timed(lambda: task_train_command(
            args.task, config=config, resume=True, train_rows=args.train_rows,
            overrides=[*common, f"train.steps={sft_steps[0]}", f"train.out_dir={sft_dir}"]))
        return cpu, loop_s - sft_loop_s

    def more_rl() -> tuple[float, float]:
        rl_steps[0] += args.rl_increment
        return timed(lambda: rl_train(task, start_model, work / "rl", GRPOConfig(
            steps=rl_steps[0], mu=mu, lr=args.rl_lr, save_every=args.rl_increment),
            resume=rl_steps[0] > args.rl_increment))

    for name, run_chunk, final, steps in [("sft", more_sft, sft_dir / "final", sft_steps),
                                          ("rl", more_rl, work / "rl/final", rl_steps)]:
        spent = loop_s = 0.0
        for _ in range(args.rounds):
            round_start = spent
            while spent - round_start < chunk_s:
                cpu, loop_s = run_chunk()
                spent += cpu
            arms[name].append({"cpu_s": spent, "loop_s": loop_s, "steps": steps[0],
                               **accuracy(final, task, args.eval_n)})
    rl_dir = work / "rl"
    curves = read_metrics(rl_dir / "metrics.jsonl")
    payload = {"task": args.task, "objective": args.objective, "sft_steps": args.sft_steps, "sft_cpu_s": sft_cpu,
               "budget_cpu_s": args.budget, "arms": arms,
               "rl_curves": [{k: r[k] for k in ("step", "reward", "accuracy", "kl", "clip_fraction")}
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

    out = results_path(f"posttrain_{args.task}_{args.objective}", publish=args.publish)
    write_outputs(out, payload, plot, command="scripts.bench.posttrain", arguments=vars(args))


if __name__ == "__main__":
    main()
