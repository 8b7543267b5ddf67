"""Fast parallel decoding on one speed-quality frontier: every sampler and setting against the fixed-quota
confidence sampler at NFE = L, on trained checkpoints (issue 23's benchmark; docs/samplers.md#fast-decoding).

Sections (each optional; --only re-runs some of them and --merge keeps the others from an earlier JSON):
    text128  the quickstart masked model (BPE, L = 128) scored by an AR reference of its tokenizer: every sampler
    text512  a masked model at L = 512 (semi-AR blocks of --block-size): the threshold sampler with the prefix,
             dual and dKV caches against the uncached fixed quota at NFE = L (wall time)
    block    a block-diffusion model with its exact block cache, its inner sampler fixed-quota or threshold
    task     a reasoning-task model (sudoku4x4): accuracy with a Wilson 95% interval, greedy decoding
Per setting: NFE per sequence (the denoiser calls in which that row still had a mask, for the adaptive rules; every
call otherwise), wall time per generate call at batch 8 and at batch 1, and quality: gen-PPL under the AR reference
and unigram entropy for text (scripts/bench/cache_quality.py: paired against the baseline, sample i drawn with
generator seed i by every setting), accuracy for the task (paired: the same puzzles; the difference's standard
error from the discordant pairs). The settings of a section are interleaved, their order rotated every batch, and
speedups are median paired ratios (scripts/bench/harness.py), so load that drifts between rounds cancels.

    python -m scripts.bench.decode --text128 CKPT REF --text512 CKPT REF --block CKPT REF --task sudoku4x4 CKPT \
        --out benchmarks/bench_decode          [--quick: fewer settings and samples; --only block --merge OLD.json]
One thread unless --threads. Absolute times on a shared CPU are inflated by the other jobs: read the ratios.
benchmarks/bench_decode.json merges four runs, one section each, run at once (checkpoints in /work/wt/ckpt, each
with its INFO.txt; ../ckpt from a worktree):
    --text128 runs/shakespeare_mdlm_bpe/final ckpt/ar_bpe128 --only text128 --samples 16 --timing-runs 1
    --text512 ckpt/mdlm_char512 ckpt/ar_char512 --only text512 --samples512 8 --timing-runs 1
    --block ckpt/bd3lm_bpe128 ckpt/ar_bpe128 --only block --samples 16 --timing-runs 1
    --task sudoku4x4 ckpt/sudoku4x4_mdlm_800 --only task
each with --out runs/bench/decode_<section>, then --merge of the four JSONs --only none --out benchmarks/bench_decode.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import dlm
from dlm.eval.generative import ReferenceLM
from dlm.sample import NFECounter, generate
from scripts.bench.cache_quality import held_out_anchor, quality, sample_stats
from scripts.bench.harness import median, median_ratio, write_outputs

SECTIONS = ("text128", "text512", "block", "task")
BASELINE = "confidence"  # the fixed-quota confidence sampler at NFE = L: every section's reference row


@dataclass
class Setting:
    """One row: family (the plot's series), the sampler spec as the command line writes it, steps, cache."""

    family: str
    spec: str
    steps: int
    cache: str | None = None

    @property
    def label(self) -> str:
        return f"{self.spec}@{self.steps}" + (f"+{self.cache}" if self.cache else "")


class RowNFE(NFECounter):
    """NFECounter that also counts per row: a call counts for a row when the row still holds a mask, or for every row
    when none does (a clean pass: the block cache's) or the sampler is not adaptive (every call is spent on it)."""

    def __init__(self, denoiser, mask_id: int, rows: int, adaptive: bool):
        super().__init__(denoiser)
        self.mask_id, self.adaptive = mask_id, adaptive
        self.per_row = torch.zeros(rows, dtype=torch.long)

    def __call__(self, xt, t, **kwargs):
        masked = (xt == self.mask_id).any(-1).cpu()
        self.per_row += masked if self.adaptive and bool(masked.any()) else 1
        return super().__call__(xt, t, **kwargs)


def is_adaptive(sampler) -> bool:
    inner = getattr(sampler, "inner_sampler", sampler)
    return bool(getattr(inner, "adaptive", lambda: False)())


def text_settings(L: int, quick: bool, *, caches: bool, remdm: bool) -> list[Setting]:
    """The sampler sweep of a text section (L tokens). caches: the L = 512 cache rows instead of the full sweep."""
    if caches:  # semi-AR blocks; every cached row against the uncached fixed quota at NFE = L
        rows = [Setting(BASELINE, "confidence", L)]
        rows += [Setting("threshold", "confidence:threshold=0.9", L, c) for c in (None, "dual", "dkv_decode", "prefix")]
        rows += [Setting("threshold", "confidence:threshold=0.7", L, "dual")]
        return rows[:3] if quick else rows
    if quick:
        return [Setting(BASELINE, "confidence", L), Setting(BASELINE, "confidence", L // 8),
                Setting("threshold", "confidence:threshold=0.9", L), Setting("ancestral", "ancestral", L),
                Setting("remdm:cap", "remdm:schedule=cap", 2 * L)]
    rows = [Setting(BASELINE, "confidence", s) for s in (L, L // 8, L // 4, L // 2)]
    rows += [Setting("threshold", f"confidence:threshold={tau}", L) for tau in (0.5, 0.7, 0.9, 0.95)]
    rows += [Setting("factor", f"confidence:factor={f}", L) for f in (1, 2)]
    rows += [Setting("entropy_bounded", f"entropy_bounded:gamma={g}", L) for g in (1, 4)]
    rows += [Setting("ancestral", "ancestral", L * m // 4) for m in (1, 2, 4, 8, 16)]
    if remdm:  # cap and loop from below L to 4L; rescale and conf at L and 2L (the CPU budget)
        rows += [Setting("remdm:cap", "remdm:schedule=cap", L * m // 2) for m in (1, 2, 4, 8)]
        rows += [Setting("remdm:loop", "remdm:schedule=loop", L * m) for m in (1, 2, 4)]
        rows += [Setting(f"remdm:{s}", f"remdm:schedule={s}", L * m) for s in ("rescale", "conf") for m in (1, 2)]
    return rows


def block_settings(block: int, quick: bool) -> list[Setting]:
    """Block model: steps are per block (block = NFE L); the inner sampler is the spec (objective.sampler)."""
    rows = [Setting(BASELINE, "confidence", block), Setting("ancestral", "ancestral", block)]
    rows += [Setting("threshold", f"confidence:threshold={tau}", block) for tau in ((0.9,) if quick else (0.7, 0.9))]
    return rows + ([] if quick else [Setting(BASELINE, "confidence", max(block // 2, 1)),
                                     Setting("entropy_bounded", "entropy_bounded:gamma=1", block)])


def task_settings(A: int, quick: bool) -> list[Setting]:
    """Task rows: A answer tokens; the baseline is one token per step (A steps)."""
    if quick:
        return [Setting(BASELINE, "confidence", A), Setting("threshold", "confidence:threshold=0.9", A),
                Setting("remdm:cap", "remdm:schedule=cap", 2 * A)]
    rows = [Setting(BASELINE, "confidence", s) for s in (A, A // 4, A // 2)]
    rows += [Setting("threshold", f"confidence:threshold={tau}", A) for tau in (0.5, 0.7, 0.9, 0.95, 0.99)]
    rows += [Setting("factor", f"confidence:factor={f}", A) for f in (0.5, 1, 2)]
    rows += [Setting("entropy_bounded", f"entropy_bounded:gamma={g}", A) for g in (0.01, 0.1, 1)]
    rows += [Setting("ancestral", "ancestral", A * m) for m in (1, 2, 4)]
    rows += [Setting("remdm:cap", "remdm:schedule=cap", A * m // 2) for m in (1, 2, 4, 8)]
    return rows


def run_once(model, setting: Setting, sampler, seeds: list[int], **shape_or_prompt) -> tuple[torch.Tensor, float,
                                                                                              torch.Tensor]:
    """(ids, seconds, per-row NFE (B,)) of one generate call, row b drawn with generator seed seeds[b]."""
    counter = RowNFE(model, model.process.mask_id, len(seeds), is_adaptive(sampler))
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    start = time.perf_counter()
    with torch.no_grad():
        ids = generate(counter, model.process, sampler, steps=setting.steps, generator=generators,
                       cache=setting.cache, **shape_or_prompt)
    return ids, time.perf_counter() - start, counter.per_row


def interleaved(model, settings: list[Setting], samplers: list, batches: list[list[int]], inputs) -> list[dict]:
    """Every setting on every batch of rows (inputs(rows) -> generate's shape / prompt kwargs), the settings' order
    rotated per batch: per setting ids (all rows), seconds per call, per-row NFE."""
    out = [{"ids": [], "seconds": [], "nfe": []} for _ in settings]
    for j, rows in enumerate(batches):
        order = list(range(len(settings)))
        for k in order[j % len(order):] + order[:j % len(order)]:
            ids, seconds, nfe = run_once(model, settings[k], samplers[k], rows, **inputs(rows))
            out[k]["ids"].append(ids), out[k]["seconds"].append(seconds), out[k]["nfe"].append(nfe)
        print(f"  batch {j + 1}/{len(batches)} of {len(rows)} rows: {len(settings)} settings done", file=sys.stderr,
              flush=True)
    for record in out:
        record["ids"], record["nfe"] = torch.cat(record["ids"]), torch.cat(record["nfe"])
    return out


def batches_of(count: int, size: int) -> list[list[int]]:
    return [list(range(i, min(i + size, count))) for i in range(0, count, size)]


def build_samplers(model, settings: list[Setting], **options) -> list:
    """objective.sampler per setting (a block-diffusion model wraps the spec as its inner sampler)."""
    return [model.objective.sampler(s.spec, **options) for s in settings]


def speed(records: list[dict], batch: int, key: str) -> list[dict]:
    """Per setting: median seconds per call and the median paired speedup over the baseline (record 0)."""
    base = records[0]["seconds"]
    return [{f"seconds_{key}": median(r["seconds"]), f"speedup_{key}": median_ratio(base, r["seconds"]),
             f"batch_{key}": batch} for r in records]


def common_row(section: str, setting: Setting, quick8: dict, quick1: dict, single: dict, record: dict,
               base_nfe: float) -> dict:
    nfe = float(record["nfe"].double().mean())
    return {"section": section, "family": setting.family, "sampler": setting.spec, "steps": setting.steps,
            "cache": setting.cache or "none", "label": setting.label, "nfe": nfe,
            "nfe_min": int(record["nfe"].min()), "nfe_max": int(record["nfe"].max()), "nfe_reduction": base_nfe / nfe,
            "nfe_b1": float(single["nfe"].double().mean()),
            "batch1_equals_batch8": bool((single["ids"] == record["ids"][:len(single["ids"])]).all()),
            **quick8, **quick1}


def bench_text(section: str, model_path: str, reference_path: str, settings: list[Setting], args, *,
               samples: int | None = None) -> dict:
    """Unconditional samples of the model's length: quality and speed of every setting (module docstring)."""
    model = dlm.DiffusionLM.from_pretrained(model_path).eval()
    reference = ReferenceLM.load(reference_path, device="cpu")
    L = model.config.data.seq_len
    options = {"temperature": 1.0, "top_p": args.top_p}
    if settings and section == "text512":
        options["block_size"] = args.block_size
    samplers = build_samplers(model, settings, **options)
    inputs = lambda rows: {"shape": (len(rows), L)}  # noqa: E731
    samples = samples or args.samples
    quality_runs = interleaved(model, settings, samplers, batches_of(samples, 8), inputs)
    single = interleaved(model, settings, samplers, batches_of(args.timing_runs, 1), inputs)
    base_stats = sample_stats(model, reference, quality_runs[0]["ids"])
    base_nfe = float(quality_runs[0]["nfe"].double().mean())
    rows = []
    for setting, record, one, s8, s1 in zip(settings, quality_runs, single, speed(quality_runs, 8, "b8"),
                                            speed(single, 1, "b1")):
        row = common_row(section, setting, s8, s1, one, record, base_nfe)
        row.update(quality(sample_stats(model, reference, record["ids"]), base_stats))
        row["token_match"] = float((record["ids"] == quality_runs[0]["ids"]).double().mean())
        rows.append(row)
        print(_line(row), flush=True)
    return {"model": model_path, "reference": reference_path, "length": L, "sampling": options,
            "samples": samples, "timing_runs": args.timing_runs,
            "held_out": held_out_anchor(model, reference, samples, L), "rows": rows}


def bench_task(task_name: str, model_path: str, settings_fn, args) -> dict:
    """Greedy answers to the task's shipped test puzzles: accuracy (Wilson 95%), paired against the baseline."""
    from dlm.tasks import get_task
    from dlm.tasks.evaluate import decode_answers, encode_prompts, wilson_interval

    task = get_task(task_name)
    model = dlm.DiffusionLM.from_pretrained(model_path).eval()
    examples = task.load("test")[:args.puzzles]
    prompts, mask = encode_prompts(task, model.tokenizer, [ex.question for ex in examples])
    settings = settings_fn(task.answer_len, args.quick)
    samplers = build_samplers(model, settings, temperature=0.0)
    inputs = lambda rows: {"prompt": prompts[rows], "prompt_mask": mask[rows]}  # noqa: E731
    runs = interleaved(model, settings, samplers, batches_of(len(examples), 8), inputs)
    single = interleaved(model, settings, samplers, batches_of(args.task_timing_runs, 1), inputs)
    solved = [torch.tensor([task.check(ex.question, a) for ex, a in
                            zip(examples, decode_answers(task, model.tokenizer, r["ids"]))]) for r in runs]
    base_nfe = float(runs[0]["nfe"].double().mean())
    rows = []
    for setting, record, one, ok, s8, s1 in zip(settings, runs, single, solved, speed(runs, 8, "b8"),
                                                speed(single, 1, "b1")):
        n, correct = len(ok), int(ok.sum())
        gained, lost = int((ok & ~solved[0]).sum()), int((~ok & solved[0]).sum())
        row = common_row("task", setting, s8, s1, one, record, base_nfe)
        row.update({"n": n, "correct": correct, "accuracy": correct / n, "wilson95": list(wilson_interval(correct, n)),
                    "accuracy_diff": (gained - lost) / n,
                    "accuracy_diff_se": math.sqrt(max(gained + lost - (gained - lost) ** 2 / n, 0.0)) / n})
        rows.append(row)
        print(_line(row), flush=True)
    return {"model": model_path, "task": task_name, "answer_len": task.answer_len, "puzzles": len(examples),
            "sampling": {"temperature": 0.0}, "timing_runs": args.task_timing_runs, "rows": rows}


def _line(row: dict) -> str:
    quality_text = (f"acc {row['accuracy']:.3f} ({100 * row['accuracy_diff']:+.1f}±{100 * row['accuracy_diff_se']:.1f})"
                    if "accuracy" in row else
                    f"ppl {row['gen_ppl']:7.2f} ({100 * row['rel_gen_ppl']:+5.1f}±{100 * row['rel_gen_ppl_se']:.1f}%)"
                    f"  H {row['entropy']:.3f} ({100 * row['rel_entropy']:+5.1f}±{100 * row['rel_entropy_se']:.1f}%)")
    return (f"{row['section']:>7s} {row['label']:>42s}  NFE {row['nfe']:6.1f} (/{row['nfe_reduction']:4.1f})  "
            f"b8 {row['seconds_b8']:6.2f}s x{row['speedup_b8']:5.2f}  b1 {row['seconds_b1']:6.2f}s "
            f"x{row['speedup_b1']:5.2f}  {quality_text}")


def targets(sections: dict) -> dict:
    """The issue's targets, each read off one section's rows: the values and whether they were met."""
    out = {}
    for name in ("text128", "task"):
        rows = sections.get(name, {}).get("rows", [])
        base = next((r for r in rows if r["family"] == BASELINE and r["cache"] == "none" and r["nfe_reduction"] == 1),
                    None)
        if base is None:
            continue
        ok = [r for r in rows if r["family"] == "threshold" and r["nfe_reduction"] >= 2.5]
        if name == "task":
            ok = [r for r in ok if abs(r["accuracy_diff"]) <= 0.01]
        else:
            ok = [r for r in ok if r["rel_gen_ppl"] <= 0.03 and abs(r["rel_entropy"]) <= 0.01]
        best = max((r for r in rows if r["family"] == "threshold"), key=lambda r: r["nfe_reduction"], default=None)
        out[f"{name}_threshold_2.5x_same_quality"] = {"met": bool(ok), "settings_meeting": [r["label"] for r in ok],
                                                       "fewest_nfe_threshold": best and best["label"]}
    rows = sections.get("text512", {}).get("rows", [])
    if rows:
        cached = [r for r in rows if r["cache"] in ("dual", "dkv_decode")]
        equal = [r for r in cached if r["rel_gen_ppl"] <= 0.03 and abs(r["rel_entropy"]) <= 0.01]
        fastest = lambda found: found and {k: max(found, key=lambda r: r["speedup_b8"])[k] for k in  # noqa: E731
                                           ("label", "nfe", "speedup_b8", "speedup_b1", "rel_gen_ppl", "rel_entropy")}
        out["text512_cache_6x"] = {"met": any(r["speedup_b8"] >= 6 for r in equal), "fastest": fastest(cached),
                                   "fastest_at_equal_quality": fastest(equal)}
    rows = sections.get("text128", {}).get("rows", [])
    ancestral = [r for r in rows if r["family"] == "ancestral"]
    remdm = [r for r in rows if r["family"].startswith("remdm") and r["nfe"] >= rows[0]["nfe"]] if rows else []
    if ancestral and remdm:
        best_anc = min(ancestral, key=lambda r: r["gen_ppl"])
        beating = [r for r in remdm if r["gen_ppl"] < best_anc["gen_ppl"]
                   and abs(r["entropy"] / best_anc["entropy"] - 1) <= 0.02]
        out["remdm_beats_best_ancestral"] = {"met": bool(beating), "settings": [r["label"] for r in beating],
                                             "beyond_two_se": [r["label"] for r in beating if _apart(best_anc, r)],
                                             "best_ancestral": {"label": best_anc["label"],
                                                                "gen_ppl": best_anc["gen_ppl"],
                                                                "entropy": best_anc["entropy"]}}
        L = sections["text128"]["length"]
        curves = {}
        for family in sorted({r["family"] for r in remdm}):
            mine = sorted((r for r in rows if r["family"] == family), key=lambda r: r["nfe"])
            past = [r for r in mine if r["steps"] >= L]
            improves = len(past) > 1 and all(b["gen_ppl"] < a["gen_ppl"] for a, b in zip(past, past[1:]))
            curves[family] = {"nfe": [r["nfe"] for r in mine], "gen_ppl": [r["gen_ppl"] for r in mine],
                              "improves_past_L": improves, "beyond_two_se": improves and _apart(past[0], past[-1])}
        out["remdm_improves_past_L"] = {"met": any(c["improves_past_L"] for c in curves.values()), "curves": curves}
    return out


def _apart(worse: dict, better: dict) -> bool:
    """Whether better's gen-PPL is below worse's by more than two standard errors of the difference (unpaired)."""
    se = math.hypot(worse.get("gen_ppl_se", 0.0), better.get("gen_ppl_se", 0.0))
    return worse["gen_ppl"] - better["gen_ppl"] > 2 * se


def plot(sections: dict, path: Path) -> None:
    """(NFE, gen-PPL) for each text section and (NFE, accuracy) for the task, every family a series, the entropy
    (text) next to each point (and a cached point's cache and batch-8 speedup); the dashed line is the baseline at
    NFE = L."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in SECTIONS if sections.get(n, {}).get("rows")]
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = sections[name]["rows"]
        key = "accuracy" if name == "task" else "gen_ppl"
        for family in dict.fromkeys(r["family"] for r in rows):
            for cached in (False, True):
                mine = sorted((r for r in rows if r["family"] == family and (r["cache"] != "none") == cached),
                              key=lambda r: r["nfe"])
                if not mine:
                    continue
                ax.plot([r["nfe"] for r in mine], [r[key] for r in mine], marker="s" if cached else "o",
                        linestyle=":" if cached else "-", label=family + (" + cache" if cached else ""))
                for r in mine:
                    text = f"{r['entropy']:.2f}" if key == "gen_ppl" else f"{r['accuracy']:.0%}"
                    text += f" {r['cache']} x{r['speedup_b8']:.1f}" if cached else ""
                    ax.annotate(text, (r["nfe"], r[key]), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.axhline(rows[0][key], color="grey", linestyle="--", linewidth=0.8)
        ax.set_xscale("log", base=2)
        if key == "gen_ppl":
            ax.set_yscale("log")
        ax.set_xlabel("NFE per sequence")
        ax.set_ylabel("accuracy" if key == "accuracy" else "gen-PPL (AR reference); labels: unigram entropy")
        ax.set_title(f"{name} (L={sections[name].get('length', sections[name].get('answer_len'))})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def seq_len(checkpoint: str) -> int:
    return dlm.DiffusionLM.from_pretrained(checkpoint).config.data.seq_len


def merged(paths: list[str]) -> dict:
    """The sections of earlier results files (a later file's replace an earlier one's of the same name), each with
    the provenance of the run that measured it (and its load average, when the file has one for the whole run)."""
    sections = {}
    for path in paths:
        payload = json.loads(Path(path).read_text())
        for name, section in payload["sections"].items():
            sections[name] = {"loadavg": payload.get("loadavg"), "provenance": payload.get("provenance"),
                              **section}  # a section's own wins
    return sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text128", nargs=2, metavar=("CKPT", "REFERENCE"))
    parser.add_argument("--text512", nargs=2, metavar=("CKPT", "REFERENCE"))
    parser.add_argument("--block", nargs=2, metavar=("CKPT", "REFERENCE"))
    parser.add_argument("--task", nargs=2, metavar=("TASK", "CKPT"))
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    parser.add_argument("--merge", default="", help="earlier JSONs, comma-separated: their sections kept unless run")
    parser.add_argument("--quick", action="store_true", help="few settings and samples: a smoke run")
    parser.add_argument("--samples", type=int, default=32, help="text samples per setting (batches of 8)")
    parser.add_argument("--samples512", type=int, default=16, help="text512 samples per setting")
    parser.add_argument("--timing-runs", type=int, default=2, help="rows timed alone at batch 1")
    parser.add_argument("--task-timing-runs", type=int, default=16, help="puzzles timed alone at batch 1")
    parser.add_argument("--puzzles", type=int, default=500, help="task test puzzles")
    parser.add_argument("--top-p", type=float, default=0.9, help="nucleus of every text sampler (ReMDM's 0.9)")
    parser.add_argument("--block-size", type=int, default=32, help="semi-AR blocks at L = 512")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/bench/bench_decode", help="writes OUT.json and OUT.png")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.samples512, args.puzzles, args.timing_runs, args.task_timing_runs = 8, 8, 32, 1, 2
    torch.set_num_threads(args.threads)
    only = set(args.only.split(","))
    sections = merged(args.merge.split(",")) if args.merge else {}
    runs = {"text128": lambda: bench_text("text128", *args.text128, text_settings(
                seq_len(args.text128[0]), args.quick, caches=False, remdm=True), args),
            "text512": lambda: bench_text("text512", *args.text512, text_settings(
                seq_len(args.text512[0]), args.quick, caches=True, remdm=False), args, samples=args.samples512),
            "block": lambda: bench_text("block", *args.block, block_settings(
                dlm.DiffusionLM.from_pretrained(args.block[0]).objective.block_size, args.quick), args),
            "task": lambda: bench_task(*args.task, task_settings, args)}
    for name, run in runs.items():
        if name in only and getattr(args, name):
            before = os.getloadavg()
            sections[name] = {**run(), "loadavg": {"before": before, "after": os.getloadavg()}}
    payload = {"threads": args.threads, "quick": args.quick, "sections": sections, "targets": targets(sections)}
    write_outputs(args.out, payload, lambda path: plot(sections, path), command="scripts.bench.decode",
                  arguments=vars(args))
    print(json.dumps(payload["targets"], indent=1))


if __name__ == "__main__":
    main()
