"""GPT-2-vocabulary scale on the CPU: sampler overhead, training-step peak memory, eager vs compiled.

* Sampler overhead: time(generate) / (NFE x one forward) for every per-position sampler, on the small backbone at
  V = 50257, L = 1024, B = 4 (random weights: the cost does not depend on them). NFE is counted and every forward
  timed inside the run (TimedDenoiser), so the ratio compares against forwards made under the same load. Target
  <= 1.25. Run it with OMP_NUM_THREADS=1 under nice; the thread count is recorded.
* Peak memory of one training step (forward + backward) per objective on the same backbone, as a ratio to the AR
  objective's: each objective runs in its own subprocess, and the step's memory is its peak RSS
  (getrusage ru_maxrss) minus the RSS just before the step (model, optimizer-free, and batch already built).
  Target <= 1.3. The logits dominate ((B, L, V) float32 = B x 206 MB here), so the ratio barely depends on B.
* Eager vs compiled training tokens/s of the small config (char vocabulary, 32 x 256, as bench_train.py), with the
  backbone compiled as train.compile does; compile time is reported separately and not counted in tokens/s.

    python -m scripts.bench.scale [--out benchmarks/bench_scale.json] [--parts sampler] [--batch 4]
        [--process absorbing|uniform] [--samplers ancestral,confidence] [--repeats 1] [--train-batch 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from dlm.config import load_config
from dlm.diffusion_lm import DiffusionLM
from dlm.registry import PROCESSES, SAMPLERS
from dlm.sample import generate
from dlm.sample.base import runs_on
from dlm.sample.nfe import NFECounter
from scripts.bench.harness import median_ratio
from scripts.bench.train import train_step

V, L = 50257, 1024
OBJECTIVES = ["autoregressive", "masked_elbo", "radd", "score_entropy", "uniform_elbo"]  # each with its own defaults


def _model(overrides: list[str], vocab: int = V, length: int = L) -> DiffusionLM:
    torch.manual_seed(0)
    return DiffusionLM.from_config(load_config(None, ["model=small", f"model.max_len={length}", *overrides]), vocab)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class TimedDenoiser(NFECounter):
    """NFECounter that also times every forward, so the overhead is measured against forwards of the same run
    (the shared machine's load drifts between runs)."""

    def __init__(self, denoiser):
        super().__init__(denoiser)
        self.seconds: list[float] = []

    def __call__(self, xt, t, **kwargs):
        start = time.perf_counter()
        out = super().__call__(xt, t, **kwargs)
        self.seconds.append(time.perf_counter() - start)
        return out


def per_position_samplers(process_name: str) -> list[str]:
    """Every registered sampler that runs on `process_name` (the autoregressive one declares no process)."""
    process = PROCESSES.get_factory(process_name)(2)
    return [name for name, cls in SAMPLERS.items() if runs_on(cls, process)]


@torch.no_grad()
def sampler_overhead(batch: int, steps: int, samplers: list[str], process_name: str, repeats: int) -> dict:
    """time(generate) / (NFE x one forward) per sampler: the median over `repeats` runs, "one forward" being the
    median forward time inside that run; forward_s (3 forwards before) is the reference the ratio also uses."""
    model = _model(["objective.name=mean_elbo", f"process.name={process_name}"]).eval()  # any process
    xt = model.process.prior((batch, L), generator=torch.Generator().manual_seed(0))
    t = torch.full((batch,), 0.5)
    model(xt, t)
    forward = statistics.median(_timed(lambda: model(xt, t)) for _ in range(3))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {"batch": batch, "seq_len": L, "vocab": V, "steps": steps, "process": process_name,
           "threads": torch.get_num_threads(), "repeats": repeats, "forward_s": forward, "samplers": {}}
    for name in samplers:
        runs = []
        for _ in range(repeats):
            timed = TimedDenoiser(model)
            seconds = _timed(lambda c=timed, n=name: generate(c, model.process, n, steps=steps, shape=(batch, L),
                                                              generator=torch.Generator().manual_seed(0)))
            runs.append({"seconds": seconds, "nfe": timed.calls, "forward_in_run_s": statistics.median(timed.seconds),
                         "overhead": seconds / (timed.calls * statistics.median(timed.seconds)),
                         "overhead_vs_reference_forward": seconds / (timed.calls * forward)})
        row = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        out["samplers"][name] = row
        print(f"  {name}: {row['seconds']:.1f} s, NFE {row['nfe']}, overhead {row['overhead']:.2f} "
              f"(vs reference forward {row['overhead_vs_reference_forward']:.2f})", flush=True)
    out["peak_rss_over_forward_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    out["logits_float32_bytes"] = batch * L * model.process.width * 4
    return out


def step_memory(objective: str, batch: int) -> dict:
    """One forward + backward; the step's extra peak RSS in bytes (run in a fresh process)."""
    model = _model([f"objective.name={objective}"])
    x0 = torch.randint(0, V, (batch, L), generator=torch.Generator().manual_seed(0))
    before = _rss_bytes()
    model.loss(x0, generator=torch.Generator().manual_seed(1)).loss.backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"objective": objective, "batch": batch, "step_peak_bytes": peak - before}


def _wait_for_memory(needed_gb: float, patience_s: float = 600.0) -> float:
    """Block until MemAvailable >= needed_gb (the machine is shared: a step that does not fit would be killed)."""
    deadline = time.monotonic() + patience_s
    while True:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable")) / 2**20
        if available >= needed_gb or time.monotonic() > deadline:
            if available < needed_gb:
                raise SystemExit(f"error: {available:.1f} GB available, the step needs ~{needed_gb:.1f} GB; "
                                 "retry when the machine is quieter or lower --train-batch")
            return available
        print(f"  waiting: {available:.1f} GB available, need {needed_gb:.1f} GB", flush=True)
        time.sleep(15)


def compiled_speed(rounds: int) -> dict:
    x0 = torch.randint(0, 69, (32, 256), generator=torch.Generator().manual_seed(0))
    out = {}
    eager, compiled = _model([], 69, 256), _model([], 69, 256)
    start = time.perf_counter()
    compiled.backbone.compile()
    steps = {name: train_step(m, lambda m=m: m.loss(x0, generator=torch.Generator().manual_seed(1)).loss)
             for name, m in (("eager", eager), ("compiled", compiled))}
    steps["compiled"]()
    out["compile_seconds"] = time.perf_counter() - start
    steps["eager"]()
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            times[name].append(_timed(fn))
    for name in steps:
        out[f"{name}_tokens_per_s"] = 32 * 256 / statistics.median(times[name])
    out["compiled_over_eager"] = median_ratio(times["eager"], times["compiled"])
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _subprocess(args: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-m", __spec__.name, *args], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    return json.loads(result.stdout.strip().splitlines()[-1])


def _merge_into(path: Path, report: dict) -> None:
    """Parts run separately (or side by side) accumulate in one JSON: read it at write time and update it."""
    merged = json.loads(path.read_text()) if path.exists() else {}
    loads = {**merged.get("load_averages", {}), **report.pop("load_averages")}
    merged.update(report)
    merged["load_averages"] = loads
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/bench_scale.json")
    parser.add_argument("--batch", type=int, default=4, help="sampling batch")
    parser.add_argument("--steps", type=int, default=2, help="sampling steps")
    parser.add_argument("--train-batch", type=int, default=8,
                        help="training batch for the memory ratio (B=8: ~9 GB of RAM per step)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, eager vs compiled")
    parser.add_argument("--parts", default="memory,sampler,compile")
    parser.add_argument("--samplers", default="", help="comma-separated (default: every per-position sampler)")
    parser.add_argument("--process", default="absorbing", help="sampling process: absorbing | uniform")
    parser.add_argument("--repeats", type=int, default=1, help="generate runs per sampler (median)")
    parser.add_argument("--memory-of", default="", help=argparse.SUPPRESS)  # child process: one objective
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.memory_of:
        print(json.dumps(step_memory(args.memory_of, args.train_batch)))
        return
    report = {"threads": torch.get_num_threads(), "torch": torch.__version__,
              "note": "shared 2-core machine (8 engineers); single-threaded; small backbone d=192, 4 layers",
              "load_averages": {args.parts: {"start": os.getloadavg()}}}
    parts = args.parts.split(",")
    if "memory" in parts:
        rows = []
        for name in OBJECTIVES:  # one objective at a time, each in a fresh process
            available = _wait_for_memory(1.3 * args.train_batch + 2.0)  # ~1.1 GB per sequence at V=50257, L=1024
            rows.append({**_subprocess(["--memory-of", name, "--train-batch", str(args.train_batch)]),
                         "available_gb_before": available})
        ar = rows[0]["step_peak_bytes"]
        report["memory"] = {r["objective"]: {**r, "ratio_to_autoregressive": r["step_peak_bytes"] / ar} for r in rows}
        for r in rows:
            print(f"  {r['objective']}: {r['step_peak_bytes'] / 2**30:.2f} GiB, "
                  f"{r['step_peak_bytes'] / ar:.2f}x AR", flush=True)
    if "sampler" in parts:
        names = args.samplers.split(",") if args.samplers else per_position_samplers(args.process)
        key = "sampler_overhead" if args.process == "absorbing" else f"sampler_overhead_{args.process}"
        report[key] = sampler_overhead(args.batch, args.steps, names, args.process, args.repeats)
    if "compile" in parts:
        report["eager_vs_compiled"] = compiled_speed(args.rounds)
        print(f"  eager vs compiled: {report['eager_vs_compiled']}", flush=True)
    report["load_averages"][args.parts]["end"] = os.getloadavg()
    _merge_into(Path(args.out), report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
