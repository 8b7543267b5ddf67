"""KV-cache benchmark on trained checkpoints: speedup against quality for every cache policy and refresh interval.

For each masked checkpoint (with an AR reference on the same tokenizer and length) and each step count:
  * unconditional samples of the full length L, the confidence sampler (LLaDA low-confidence remasking, temperature
    1, semi-AR blocks of --block-size), --samples of them at batch 8, sample i drawn with generator seed i by every
    policy (paired noise): gen-PPL under the reference and unigram entropy, each relative to the uncached sampler
    at the same steps, with paired standard errors (scripts/bench/cache_quality.py), and the fraction of tokens equal to
    the uncached sample;
  * wall time per call of generate at batch 8 (those same runs) and at batch 1 (--timing-runs rows alone), the
    policies interleaved within every repetition; speedup = median uncached time / median cached time, both
    measured in this run;
  * infilling on held-out lines (scripts/cache_quality.infill_rows: the middle half of a line masked in a window of
    L characters), greedy (temperature 0), --infill-steps steps: exact-character accuracy and its speedup;
  * optionally (--ancestral-steps) the ancestral sampler against ancestral_cache (MDLM's exact cache: the
    denoiser is reused while no token changes), same seeds, which must give identical tokens.
FLOPs per backbone call are counted from the query tokens n and keys L:
    per row  n_layers ((8 + 4 r) n d^2 + 4 n L d) + 2 n d N    (QKV/out/MLP with MLP ratio r, QK^T and AV, head).
One thread unless --threads. Timings on a shared CPU are noisy: read the medians and ratios of one run.

    python -m scripts.bench.cache --model CKPT REFERENCE 32,64 [--model CKPT2 REF2 128] --out benchmarks/bench_cache
benchmarks/bench_cache.json merges three runs (--merge): the char-level Shakespeare MDLM at 64 steps, 32 samples and
--ancestral-steps 256 --ancestral-samples 8, the L=512 model at 128 steps with --samples 16 --infill 16, and at
64 steps with --samples 32 --infill 16 (fewer policies: --policies). The checkpoints (meta.models) were trained by
    dlm train --config configs/runs/shakespeare_mdlm.yaml train.steps=250 ...        (char-level MDLM and, with
    dlm train --config configs/runs/shakespeare_ar.yaml train.steps=250 ...           its AR reference, at L=128)
and at L=512 with  model.d_model=128 model.n_layers=4 model.n_heads=4 model.max_len=512 data.seq_len=512
train.batch_size=8: shakespeare_mdlm.yaml for 300 of 450 scheduled steps (the step_000300 checkpoint) and
shakespeare_ar.yaml for 200 of 300 (step_000200), about 25 and 15 minutes of one loaded core.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import dlm
from dlm.cache import get_cache
from dlm.eval.generative import ReferenceLM
from dlm.sample import generate, get_sampler
from scripts.bench.cache_quality import held_out_anchor, infill_accuracy, infill_rows, quality, sample_stats
from scripts.bench.harness import write_outputs

POLICIES = ["none", "dkv_decode:block_only=0", "dkv_decode:block_only=0,refresh_every=4", "dkv_decode:refresh_every=4",
            "dkv_decode", "dkv_decode:refresh_at_block=0,refresh_every=32", "dkv_greedy", "prefix", "dual"]
TIMED_BATCH = 8


class FlopMeter:
    """Forward FLOPs of the backbone calls made while attached (formula in the module docstring)."""

    def __init__(self, model, keys: int):
        cfg = model.backbone.cfg
        self.d, self.layers, self.vocab, self.keys = cfg.d_model, cfg.n_layers, model.backbone.vocab_out, keys
        self.mlp = cfg.mlp_ratio
        self.flops = 0
        self.handle = model.backbone.register_forward_pre_hook(self._count)

    def _count(self, module, args) -> None:
        rows, n = args[0].shape
        d = self.d
        per_layer = (8 + 4 * self.mlp) * n * d * d + 4 * n * self.keys * d
        self.flops += rows * (self.layers * per_layer + 2 * n * d * self.vocab)

    def close(self) -> int:
        self.handle.remove()
        return self.flops


def run(model, sampler, steps: int, rows: range, length: int, policy: str, **task) -> tuple[torch.Tensor, float, int]:
    """(ids (B, L), seconds, FLOPs) of one generate call on sample rows `rows` (row i: generator seed i)."""
    generators = [torch.Generator().manual_seed(i) for i in rows]
    meter = FlopMeter(model, length)
    start = time.perf_counter()
    with torch.no_grad():
        ids = generate(model, model.process, sampler, steps=steps, shape=(len(rows), length), generator=generators,
                       cache=None if policy == "none" else get_cache(policy), **task)
    return ids, time.perf_counter() - start, meter.close()


def interleaved(model, sampler, steps, length, policies, batches: list[range], **task) -> dict[str, dict]:
    """Every policy on every batch of rows, the policies' order rotated per batch: ids (all rows), times, FLOPs."""
    out = {p: {"ids": [], "seconds": [], "flops": 0} for p in policies}
    for j, rows in enumerate(batches):
        for policy in policies[j % len(policies):] + policies[:j % len(policies)]:
            spec = task if not task else {k: v[rows.start:rows.stop] for k, v in task.items()}
            ids, seconds, flops = run(model, sampler, steps, rows, length, policy, **spec)
            out[policy]["ids"].append(ids)
            out[policy]["seconds"].append(seconds)
            out[policy]["flops"] += flops
    for record in out.values():
        record["ids"] = torch.cat(record["ids"])
    return out


def batches_of(count: int, size: int) -> list[range]:
    return [range(i, min(i + size, count)) for i in range(0, count, size)]


def speed_rows(timed: dict, key: str, batch: int) -> dict[str, dict]:
    """policy -> {speedup_<key>, seconds_<key>, flop_reduction} from interleaved runs of one batch size."""
    base = statistics.median(timed["none"]["seconds"])
    out = {}
    for policy, record in timed.items():
        median = statistics.median(record["seconds"])
        out[policy] = {f"seconds_b{batch}{key}": median / batch, f"speedup_b{batch}{key}": base / median,
                       f"flop_reduction{key}": timed["none"]["flops"] / record["flops"]}
    return out


def bench_steps(model, reference, steps: int, args, policies: list[str]) -> list[dict]:
    """All measurements of one checkpoint at one step count: one row per policy."""
    L = model.config.data.seq_len
    sampler = get_sampler("confidence", temperature=1.0, block_size=args.block_size)
    quality_runs = interleaved(model, sampler, steps, L, policies, batches_of(args.samples, TIMED_BATCH))
    single = interleaved(model, sampler, steps, L, policies, batches_of(args.timing_runs, 1))
    base_ids = quality_runs["none"]["ids"]
    base_stats = sample_stats(model, reference, base_ids)
    tokens, span = infill_rows(model, args.infill, L)
    greedy = get_sampler("confidence", temperature=0.0, block_size=args.block_size)
    infill = interleaved(model, greedy, args.infill_steps, L, policies, batches_of(args.infill, TIMED_BATCH),
                         prompt=tokens, prompt_mask=~span)
    speeds = [speed_rows(quality_runs, "", TIMED_BATCH), speed_rows(single, "", 1),
              speed_rows(infill, "_infill", TIMED_BATCH)]
    rows = []
    for policy in policies:
        ids = quality_runs[policy]["ids"]
        stats = sample_stats(model, reference, ids)
        row = {"length": L, "steps": steps, "policy": policy, **quality(stats, base_stats),
               "token_match": float((ids == base_ids).double().mean()),
               "batch1_equals_batch8": bool((single[policy]["ids"] == ids[:args.timing_runs]).all()),
               **infill_accuracy(infill[policy]["ids"], tokens, span)}
        for speed in speeds:
            row.update(speed[policy])
        rows.append(row)
        print(_line(row), flush=True)
    return rows


def bench_ancestral(model, reference, steps: int, args) -> list[dict]:
    """ancestral (no cache) against ancestral_cache at `steps`: tokens, quality and speed, batch 8 and 1."""
    L = model.config.data.seq_len
    out = {}
    for batch, count in ((TIMED_BATCH, args.ancestral_samples), (1, args.timing_runs)):
        runs = {}
        for j, rows in enumerate(batches_of(count, batch)):
            for name in (["ancestral", "ancestral_cache"] if j % 2 == 0 else ["ancestral_cache", "ancestral"]):
                ids, seconds, flops = run(model, get_sampler(name), steps, rows, L, "none")
                record = runs.setdefault(name, {"ids": [], "seconds": [], "flops": 0})
                record["ids"].append(ids), record["seconds"].append(seconds)
                record["flops"] += flops
        for record in runs.values():
            record["ids"] = torch.cat(record["ids"])
        out[batch] = {"none" if k == "ancestral" else k: v for k, v in runs.items()}
    base = sample_stats(model, reference, out[TIMED_BATCH]["none"]["ids"])
    rows = []
    for name in ("none", "ancestral_cache"):
        ids = out[TIMED_BATCH][name]["ids"]
        row = {"length": L, "steps": steps, "policy": "ancestral" if name == "none" else name, "sampler": "ancestral",
               **quality(sample_stats(model, reference, ids), base),
               "token_match": float((ids == out[TIMED_BATCH]["none"]["ids"]).double().mean()),
               **speed_rows(out[TIMED_BATCH], "", TIMED_BATCH)[name], **speed_rows(out[1], "", 1)[name]}
        rows.append(row)
        print(_line(row), flush=True)
    return rows


def _line(row: dict) -> str:
    infill = f"  infill {row['infill_accuracy']:.3f} x{row['speedup_b8_infill']:4.2f}" if "infill_accuracy" in row \
        else ""
    return (f"L={row['length']:4d} steps={row['steps']:4d} {row['policy']:>28s}  x{row['speedup_b1']:5.2f} b1  "
            f"x{row['speedup_b8']:5.2f} b8  ppl {row['gen_ppl']:6.3f} ({100 * row['rel_gen_ppl']:+5.1f}"
            f"±{100 * row['rel_gen_ppl_se']:.1f}%)  H {row['entropy']:.3f} ({100 * row['rel_entropy']:+5.1f}"
            f"±{100 * row['rel_entropy_se']:.1f}%)  match {row['token_match']:.2f}{infill}")


def _short(policy: str) -> str:
    """'dkv_decode:block_only=0,refresh_every=4' -> 'dkv_decode(all masks)@4'; '/run': refresh_at_block=0."""
    name, _, spec = policy.partition(":")
    options = dict(item.split("=") for item in filter(None, spec.split(",")))
    label = name + ("(all masks)" if options.get("block_only") == "0" else "")
    if "refresh_every" in options:
        label += "@" + options["refresh_every"]
    return label + ("/run" if options.get("refresh_at_block") == "0" else "")


def plot(rows: list[dict], path: Path) -> None:
    """One row of panels per length: relative gen-PPL and entropy against speedup (filled: batch 8, hollow: batch
    1; error bars one standard error; the grey band is the +-2% target), infill accuracy against its speedup."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    lengths = sorted({r["length"] for r in rows})
    fig, axes = plt.subplots(len(lengths), 3, figsize=(17, 5.5 * len(lengths)), squeeze=False)
    policies = list(dict.fromkeys(_short(r["policy"]) for r in rows))
    colors = {p: plt.cm.tab20(i % 20) for i, p in enumerate(policies)}
    markers = {s: m for s, m in zip(sorted({r["steps"] for r in rows}), "osD^v")}
    for axrow, length in zip(axes, lengths):
        for r in (r for r in rows if r["length"] == length):
            c, m = colors[_short(r["policy"])], markers[r["steps"]]
            for ax, key in zip(axrow[:2], ("rel_gen_ppl", "rel_entropy")):
                y, e = 100 * r[key], 100 * r[key + "_se"]
                ax.errorbar(r["speedup_b8"], y, yerr=e, color=c, marker=m, ls="none")
                ax.errorbar(r["speedup_b1"], y, yerr=e, color=c, marker=m, ls="none", mfc="white")
            if "infill_accuracy" in r:
                axrow[2].errorbar(r["speedup_b8_infill"], r["infill_accuracy"], yerr=r["infill_accuracy_se"],
                                  color=c, marker=m, ls="none")
        steps = ", ".join(f"{m}: {s} steps" for s, m in markers.items())
        for ax, label in zip(axrow[:2], ("gen-PPL", "unigram entropy")):
            ax.axhspan(-2, 2, color="grey", alpha=0.2)
            ax.axvline(3, color="grey", ls=":")
            ax.set(xscale="log", xlabel="speedup over uncached (filled: batch 8, hollow: batch 1)",
                   ylabel=f"{label} vs uncached sampler, % (+- 1 s.e.)", title=f"L={length}: {label} ({steps})")
        axrow[2].set(xscale="log", xlabel="infilling speedup (batch 8)", ylabel="exact-character accuracy",
                     title=f"L={length}: infilling held-out lines")
        for ax in axrow:
            ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xticks([1, 1.5, 2, 3, 4, 6, 8, 12, 16])
    handles = [plt.Line2D([], [], color=colors[p], marker="o", ls="none", label=p) for p in policies]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs=3, action="append", default=[], metavar=("CKPT", "REFERENCE", "STEPS"),
                        help="a masked checkpoint, its AR reference (same tokenizer) and comma-separated steps")
    parser.add_argument("--policies", default=",".join(POLICIES), help="';'-separated cache specs ('none' first)")
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=32, help="samples per policy and step count (batches of 8)")
    parser.add_argument("--timing-runs", type=int, default=3, help="batch-1 runs per policy")
    parser.add_argument("--infill", type=int, default=32, help="held-out lines to infill")
    parser.add_argument("--infill-steps", type=int, default=16)
    parser.add_argument("--ancestral-steps", type=int, default=0, help="also ancestral vs ancestral_cache (0: skip)")
    parser.add_argument("--ancestral-samples", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--merge", action="append", default=[], help="an earlier run's JSON whose models and rows "
                        "are put first in this one's (one figure for runs made separately)")
    parser.add_argument("--out", default="outputs/bench_cache", help="writes OUT.json and OUT.png")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policies = args.policies.split(";") if ";" in args.policies else _split_specs(args.policies)
    rows, models = [], []
    for earlier in (json.loads(Path(path).read_text()) for path in args.merge):
        rows += earlier["rows"]
        settings = {key: earlier["meta"][key] for key in ("samples", "timing_runs_batch1") if key in earlier["meta"]}
        models += [{**settings, **m} for m in earlier["meta"]["models"]]
    for checkpoint, reference, steps in args.model:
        model = dlm.DiffusionLM.from_pretrained(checkpoint).eval()
        ref = ReferenceLM.load(reference, device="cpu")
        models.append({"checkpoint": checkpoint, "reference": reference, "length": model.config.data.seq_len,
                       "parameters": sum(p.numel() for p in model.parameters()),
                       "held_out_text": held_out_anchor(model, ref, args.samples, model.config.data.seq_len),
                       "samples": args.samples, "timing_runs_batch1": args.timing_runs})
        print(f"{checkpoint}: held-out text under the reference {models[-1]['held_out_text']}", flush=True)
        L = model.config.data.seq_len
        run(model, get_sampler("confidence", block_size=args.block_size), -(-L // args.block_size), range(1), L,
            "dual")  # warm-up: one step per block
        for count in (int(s) for s in steps.split(",")):
            rows += bench_steps(model, ref, count, args, policies)
        if args.ancestral_steps:
            rows += bench_ancestral(model, ref, args.ancestral_steps, args)
    meta = {"models": models, "sampler": f"confidence (max_prob), temperature 1, block_size {args.block_size}",
            "infill": f"greedy confidence, {args.infill_steps} steps, middle half of held-out lines",
            "threads": args.threads,
            "torch": torch.__version__}
    write_outputs(args.out, {"meta": meta, "rows": rows}, lambda path: plot(rows, path))


def _split_specs(text: str) -> list[str]:
    """'none,dkv_decode:refresh_every=2,window=3,dual' -> specs: a comma before key=value continues a spec."""
    specs: list[str] = []
    for part in text.split(","):
        if "=" in part and ":" not in part and specs:
            specs[-1] += "," + part
        else:
            specs.append(part)
    return specs


if __name__ == "__main__":
    main()
