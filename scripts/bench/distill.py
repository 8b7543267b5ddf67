"""Few-step generation by distillation: gen-PPL and unigram entropy of a teacher and its students after each round,
at 4-64 sampling steps, for a masked teacher (SDTT) and a uniform-state teacher (Duo's DCD).

For each family: `dlm distill` from the teacher (skipped when RUN/final exists, so the distillations can be run
beforehand in parallel with the same settings), then the teacher and every round's student sample --num-samples
sequences of --length tokens with the ancestral sampler at each of --eval-steps steps (the same seed for every
model and step count), scored by the reference AR model (gen-PPL, dlm/eval/generative.py) beside their unigram
entropy. Target (docs/distillation.md#measurements): the 8-step student within 10% of the teacher's 64-step gen-PPL
at an entropy within 2%. Writes runs/distill.{json,png} (benchmarks/ with --publish).

    python -m scripts.bench.distill --quick          # seconds: tiny untrained models, a pipeline check
    python -m scripts.bench.distill --masked runs/teachers/mdlm/final --uniform runs/teachers/udlm/final \
        --reference runs/teachers/ar/final --steps-per-round 150 --publish
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

import dlm
from dlm.eval.generative import ReferenceLM, generative_perplexity, sample_texts, unigram_entropy
from dlm.train.distill.run import DistillConfig, distill
from dlm.train.log import read_metrics
from scripts.bench.harness import results_path, write_outputs

FAMILIES = {"masked": "sdtt", "uniform": "dcd"}


def runs_to_measure(args) -> dict[str, tuple[str, str, dict]]:
    """{run name: (family, teacher, settings that differ from args)}: one run per family with a teacher, and with
    --also-target T a second masked run with SDTT's other target, for a side-by-side comparison."""
    runs = {name: (name, teacher, {}) for name, teacher in (("masked", args.masked), ("uniform", args.uniform))
            if teacher}
    if args.also_target and args.masked:
        runs[f"masked_{args.also_target}"] = ("masked", args.masked, {"target": args.also_target})
    return runs


def evaluate(checkpoint: str, reference: ReferenceLM, steps: list[int], args, sampler: str) -> list[dict]:
    model = dlm.DiffusionLM.from_pretrained(checkpoint).eval()
    rows = []
    for k in steps:
        samples = sample_texts(model, num_samples=args.num_samples, length=args.length, steps=k, seed=args.seed,
                               sampler=sampler)
        scored = generative_perplexity(samples.texts, reference)
        rows.append({"steps": k, "gen_ppl": scored["gen_ppl"], "unigram_entropy": unigram_entropy(samples.ids),
                     "example": samples.texts[0][:80]})
        print(f"{checkpoint:<48} {sampler} {k:>3} steps  gen-PPL {scored['gen_ppl']:8.2f}  entropy "
              f"{rows[-1]['unigram_entropy']:.3f}", flush=True)
    return rows


def cached_evaluation(cache: Path, checkpoint: str, reference: ReferenceLM, steps: list[int], args,
                      sampler: str = "ancestral") -> list[dict]:
    """evaluate(), or its rows from `cache` when they were measured with the same settings (a second invocation,
    e.g. both families after each was run on its own, re-samples nothing)."""
    settings = {"checkpoint": checkpoint, "reference": args.reference, "steps": steps, "seed": args.seed,
                "num_samples": args.num_samples, "length": args.length}
    if sampler != "ancestral":
        settings["sampler"] = sampler
    if cache.is_file() and json.loads(cache.read_text())["settings"] == settings:
        return json.loads(cache.read_text())["rows"]
    rows = evaluate(checkpoint, reference, steps, args, sampler)
    cache.write_text(json.dumps({"settings": settings, "rows": rows}))
    return rows


def family_result(family: str, teacher: str, run_dir: Path, reference: ReferenceLM, args, **settings) -> dict:
    cfg = DistillConfig(method=FAMILIES[family], teacher_steps=args.teacher_steps, rounds=args.rounds,
                        steps_per_round=args.steps_per_round, batch_size=args.batch_size, lr=args.lr,
                        divergence=args.divergence, target=settings.get("target", args.target),
                        time_sampling=args.time_sampling, ema=args.ema, seed=args.seed,
                        save_every=args.steps_per_round // 2 or 1)
    if not (run_dir / "final").is_dir():
        distill(teacher, run_dir, cfg)
    metrics = read_metrics(run_dir / "metrics.jsonl")
    steps = [int(s) for s in args.eval_steps.split(",")]
    models = {"teacher": teacher} | {f"student_{k}": str(run_dir / "students" / f"steps_{k}")
                                      for k in (cfg.schedule.student_steps(r) for r in range(cfg.rounds))}
    curves = {label: cached_evaluation(run_dir / f"eval_{label}.json", path, reference, steps, args)
              for label, path in models.items()}
    for temperature in args.teacher_temperatures:  # the teacher sharpened to the students' entropy, as a baseline
        curves[f"teacher_T{temperature:g}"] = cached_evaluation(
            run_dir / f"eval_teacher_T{temperature:g}.json", teacher, reference, steps, args,
            sampler=f"ancestral:temperature={temperature:g}")
    final = cfg.schedule.student_steps(cfg.rounds - 1)
    teacher_best = next(r for r in curves["teacher"] if r["steps"] == max(steps))
    student = next((r for r in curves[f"student_{final}"] if r["steps"] == final), None)
    verdict = None
    if student is not None:
        ppl_ratio = student["gen_ppl"] / teacher_best["gen_ppl"]
        entropy_change = student["unigram_entropy"] / teacher_best["unigram_entropy"] - 1
        verdict = {"student_steps": final, "teacher_steps": max(steps), "gen_ppl_ratio": ppl_ratio,
                   "entropy_relative_change": entropy_change,
                   "met": bool(ppl_ratio <= 1.10 and abs(entropy_change) <= 0.02)}
    return {"family": family, "method": cfg.method, "teacher": teacher, "run_dir": str(run_dir),
            "distill_settings": vars(cfg),
            "distill_elapsed_s": metrics[-1]["elapsed_s"] if metrics else None,
            "loss_curve": [{"step": r["step"], "loss": r["loss"], "student_steps": r["student_steps"]}
                           for r in metrics], "curves": curves, "target": verdict}


def quick_models(tmp: Path) -> dict[str, str]:
    """Tiny untrained teachers and reference on a corpus head, for --quick."""
    from dlm.data import tokenizer_from_config
    from dlm.data.paths import CORPUS_DIR

    corpus = tmp / "head.txt"
    corpus.write_text((CORPUS_DIR / "tinyshakespeare.txt").read_text()[:20_000])
    base = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.max_len=32", "data.tokenizer=char",
            "data.seq_len=32", f"data.source={corpus}"]
    paths = {}
    for label, objective in (("masked", "masked_elbo"), ("uniform", "uniform_elbo"), ("reference", "autoregressive")):
        cfg = dlm.load_config(None, [*base, f"objective.name={objective}"])
        tokenizer = tokenizer_from_config(cfg.data)
        torch.manual_seed(0)
        paths[label] = str(tmp / label)
        dlm.DiffusionLM.from_config(cfg, len(tokenizer), tokenizer=tokenizer).save_pretrained(paths[label])
    return paths


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--masked", default="runs/teachers/mdlm/final", help="masked teacher ('' to skip)")
    parser.add_argument("--uniform", default="runs/teachers/udlm/final", help="uniform-state teacher ('' to skip)")
    parser.add_argument("--reference", default="runs/teachers/ar/final", help="AR model that scores samples")
    parser.add_argument("--runs-dir", default="runs/distill", help="the distillation runs go to RUNS_DIR/<family>")
    parser.add_argument("--teacher-steps", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps-per-round", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--divergence", default="kl_bwd")
    parser.add_argument("--target", default="sampled", help="SDTT's target: sampled (the reference's) or law")
    parser.add_argument("--also-target", default="", help="a second masked run with this SDTT target ('': none)")
    parser.add_argument("--time-sampling", default="grid", help="SDTT's student steps: grid or uniform")
    parser.add_argument("--ema", type=float, default=0.0, help="EMA decay of the exported students (0: off)")
    parser.add_argument("--eval-steps", default="4,8,16,32,64")
    parser.add_argument("--teacher-temperatures", type=lambda v: [float(x) for x in v.split(",") if x], default=[],
                        help="also sample the teacher at these temperatures (e.g. 0.9,0.8): entropy-matched baselines")
    parser.add_argument("--num-samples", type=int, default=64)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny untrained models: a pipeline check in seconds")
    parser.add_argument("--publish", action="store_true", help="write benchmarks/distill.* instead of runs/")
    parser.add_argument("--name", default="distill", help="results file name (e.g. one per family while both run)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            paths = quick_models(Path(tmp))
            args.masked, args.uniform, args.reference = paths["masked"], paths["uniform"], paths["reference"]
            args.runs_dir, args.steps_per_round, args.teacher_steps, args.rounds = f"{tmp}/runs", 2, 8, 2
            args.eval_steps, args.num_samples, args.length = "2,4,8", 4, 32
            args.also_target = args.also_target or "law"
            args.teacher_temperatures = args.teacher_temperatures or [0.8]
        reference = ReferenceLM.load(args.reference, device="cpu")
        families = {name: family_result(family, teacher, Path(args.runs_dir) / name, reference, args, **settings)
                    for name, (family, teacher, settings) in runs_to_measure(args).items()}
    payload = {"load_average": os.getloadavg(), "threads": torch.get_num_threads(), "reference": args.reference,
               "families": families}
    write_outputs(results_path(args.name, publish=args.publish and not args.quick), payload,
                  lambda path: plot(families, path), command="scripts.bench.distill", arguments=vars(args))
    print(json.dumps({name: f["target"] for name, f in families.items()}, indent=2))
    return payload


def plot(families: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(families), figsize=(6.5 * len(families), 4.5), squeeze=False)
    for ax, family in zip(axes[0], families.values()):
        for label, rows in family["curves"].items():
            xs, ys = [r["steps"] for r in rows], [r["gen_ppl"] for r in rows]
            ax.plot(xs, ys, marker="o", linestyle="--" if label.startswith("teacher_T") else "-",
                    label=label.replace("_", " ") + (" steps" if "student" in label else ""))
            for r in rows:
                ax.annotate(f"{r['unigram_entropy']:.2f}", (r["steps"], r["gen_ppl"]), fontsize=6,
                            textcoords="offset points", xytext=(3, 3))
        best = max(family["curves"]["teacher"], key=lambda r: r["steps"])
        ax.axhline(1.1 * best["gen_ppl"], color="gray", linestyle="--", linewidth=0.8,
                   label=f"target: teacher at {best['steps']} steps + 10%")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sampling steps (ancestral)")
        ax.set_ylabel("gen-PPL under the char AR reference")
        target = f", {family['distill_settings']['target']} target" if family["method"] == "sdtt" else ""
        ax.set_title(f"{family['family']} teacher, {family['method'].upper()}{target} students "
                     "(labels: unigram entropy)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
