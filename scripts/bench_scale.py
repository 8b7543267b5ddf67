"""GPT-2-vocabulary scale on the CPU (issue 8): sampler overhead, training-step peak memory, eager vs compiled.

* Sampler overhead: time(generate) / (NFE x one forward) for every per-position sampler, on the small backbone at
  V = 50257, L = 1024 (random weights: the cost does not depend on them). NFE is counted by NFECounter. Target <= 1.25.
* Peak memory of one training step (forward + backward) per objective on the same backbone, as a ratio to the AR
  objective's: each objective runs in its own subprocess, and the step's memory is its peak RSS
  (getrusage ru_maxrss) minus the RSS just before the step (model, optimizer-free, and batch already built).
  Target <= 1.3. The logits dominate ((B, L, V) float32 = B x 206 MB here), so the ratio barely depends on B.
* Eager vs compiled training tokens/s of the small config (char vocabulary, 32 x 256, as bench_train.py), with the
  backbone compiled as train.compile does; compile time is reported separately and not counted in tokens/s.

    .venv/bin/python scripts/bench_scale.py [--out benchmarks/bench_scale.json] [--batch 1] [--train-batch 2]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import train_step  # noqa: E402

from dlm.config import load_config  # noqa: E402
from dlm.diffusion_lm import DiffusionLM  # noqa: E402
from dlm.sample import generate  # noqa: E402
from dlm.sample.nfe import NFECounter  # noqa: E402

V, L = 50257, 1024
SAMPLERS = ("ancestral", "euler", "tau_leaping", "analytic", "theta_trapezoidal", "confidence")
OBJECTIVES = {
    "autoregressive": ["objective.name=autoregressive"],
    "masked_elbo": [],
    "radd": ["objective.name=radd"],
    "score_entropy": ["objective.name=score_entropy", "objective.time_conditioning=true"],
    "uniform_elbo": ["objective.name=uniform_elbo", "process.name=uniform", "objective.time_conditioning=true"],
}


def _model(overrides: list[str], vocab: int = V, length: int = L) -> DiffusionLM:
    torch.manual_seed(0)
    return DiffusionLM.from_config(load_config(None, ["model=small", f"model.max_len={length}", *overrides]), vocab)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@torch.no_grad()
def sampler_overhead(batch: int, steps: int, samplers: list[str]) -> dict:
    model = _model([]).eval()
    xt = torch.full((batch, L), model.process.mask_id, dtype=torch.long)
    t = torch.full((batch,), 0.5)
    model(xt, t)
    forward = statistics.median(_timed(lambda: model(xt, t)) for _ in range(3))
    out = {"batch": batch, "seq_len": L, "vocab": V, "steps": steps, "forward_s": forward, "samplers": {}}
    for name in samplers:
        counter = NFECounter(model)
        seconds = _timed(lambda c=counter, n=name: generate(c, model.process, n, steps=steps, shape=(batch, L),
                                                            generator=torch.Generator().manual_seed(0)))
        out["samplers"][name] = {"seconds": seconds, "nfe": counter.calls,
                                 "overhead": seconds / (counter.calls * forward)}
        print(f"  {name}: {seconds:.1f} s, NFE {counter.calls}, overhead {out['samplers'][name]['overhead']:.2f}",
              flush=True)
    return out


def step_memory(objective: str, batch: int) -> dict:
    """One forward + backward; the step's extra peak RSS in bytes (run in a fresh process)."""
    model = _model(OBJECTIVES[objective])
    x0 = torch.randint(0, V, (batch, L), generator=torch.Generator().manual_seed(0))
    before = _rss_bytes()
    model.loss(x0, generator=torch.Generator().manual_seed(1)).loss.backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"objective": objective, "batch": batch, "step_peak_bytes": peak - before}


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
    out["compiled_over_eager"] = statistics.median(e / c for e, c in zip(times["eager"], times["compiled"]))
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _subprocess(args: list[str]) -> dict:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
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
    parser.add_argument("--batch", type=int, default=1, help="sampling batch (issue 8 asks B=4: ~4x the memory)")
    parser.add_argument("--steps", type=int, default=2, help="sampling steps")
    parser.add_argument("--train-batch", type=int, default=2, help="training batch for the memory ratio")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, eager vs compiled")
    parser.add_argument("--parts", default="memory,sampler,compile")
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
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
        rows = [_subprocess(["--memory-of", name, "--train-batch", str(args.train_batch)]) for name in OBJECTIVES]
        ar = rows[0]["step_peak_bytes"]
        report["memory"] = {r["objective"]: {**r, "ratio_to_autoregressive": r["step_peak_bytes"] / ar} for r in rows}
        for r in rows:
            print(f"  {r['objective']}: {r['step_peak_bytes'] / 2**30:.2f} GiB, "
                  f"{r['step_peak_bytes'] / ar:.2f}x AR", flush=True)
    if "sampler" in parts:
        report["sampler_overhead"] = sampler_overhead(args.batch, args.steps, args.samplers.split(","))
    if "compile" in parts:
        report["eager_vs_compiled"] = compiled_speed(args.rounds)
        print(f"  eager vs compiled: {report['eager_vs_compiled']}", flush=True)
    report["load_averages"][args.parts]["end"] = os.getloadavg()
    _merge_into(Path(args.out), report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
