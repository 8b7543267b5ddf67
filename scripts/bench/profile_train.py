"""Where a training step's time goes: torch.profiler self time per kernel family, dlm's objectives vs the reference.

The same models and steps as `scripts/bench/train.py` (forward + backward + AdamW update of one batch; `Reference`,
the plain transformer of the same token-level size), each profiled for --steps steps in turn (A/B), at --threads
threads. Every aten op's self CPU time is put in one family: matmul (mm / addmm / bmm), attention (SDPA), GELU
(torch's kernels or dlm's sigmoid form), LayerNorm, rotary (dlm's node and its kernels), loss kernels
(log-softmax / NLL / logsumexp / gathers of the logits), optimizer, other (elementwise, copies, embedding, adaLN
modulation, autograd glue). Profiler times are wall-clock and carry its overhead: read the families as shares, and
take speed ratios from bench_train. Writes JSON.

    python -m scripts.bench.profile_train [--out benchmarks/profile_train.json] [--models tiny,small]
        [--steps 8,3] [--objectives masked_elbo,score_entropy]
"""

from __future__ import annotations

import argparse
import collections
import os

import torch
from torch.profiler import ProfilerActivity, profile

import scripts.bench.train as bt

FAMILIES = (  # (family, substrings of an aten op or autograd node name), first match wins
    ("attention (SDPA)", ("scaled_dot_product",)),
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm")),
    ("rotary", ("RotateQKV",)),
    ("GELU", ("gelu", "Gelu")),
    ("LayerNorm", ("layer_norm",)),
    ("loss kernels", ("cross_entropy", "log_softmax", "nll_loss", "logsumexp", "LogsumexpAndGather", "MixtureLogSum",
                      "logaddexp")),
    ("optimizer", ("Optimizer.step", "adam")),
)


def family(event) -> str:
    """The family of one profiler event, by its name and the nodes it runs under (an autograd Function, the
    optimizer step); the matmul names count for the op itself only."""
    names = [event.name]
    parent = event.cpu_parent
    while parent is not None:
        names.append(parent.name)
        parent = parent.cpu_parent
    for fam, keys in FAMILIES:
        if any(k in n for n in names for k in keys if not (k.startswith("aten::") and n != event.name)):
            return fam
    return "other"


def profile_model(fns: dict, steps: int) -> dict[str, dict[str, float]]:
    """ms per step of each family for each fn, profiling one step of each in turn, `steps` rounds."""
    totals = {key: collections.defaultdict(float) for key in fns}
    for fn in fns.values():
        fn()
        fn()
    for _ in range(steps):
        for key, fn in fns.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
            for event in prof.events():  # self times partition the step
                totals[key][family(event)] += event.self_cpu_time_total / 1000 / steps
    return {key: {fam: round(ms, 2) for fam, ms in sorted(t.items(), key=lambda kv: -kv[1])}
            for key, t in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench/profile_train.json")
    parser.add_argument("--models", default="tiny,small")
    parser.add_argument("--shapes", default="32x128,32x256", help="BxL per model, comma-separated")
    parser.add_argument("--steps", default="8,3", help="profiled rounds per model, comma-separated")
    parser.add_argument("--objectives", default="masked_elbo,score_entropy,uniform_elbo,autoregressive")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="", help="how the machine was loaded, recorded in the JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"machine": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                          "load_average_at_start": os.getloadavg(), "note": args.note}, "results": []}
    for name, shape, steps in zip(args.models.split(","), args.shapes.split(","), args.steps.split(",")):
        batch, seq_len = (int(v) for v in shape.split("x"))
        fns = bt.model_steps(name, batch, seq_len, args.objectives.split(","), with_nanogpt=False)[2]
        families = profile_model(fns, int(steps))
        report["results"].append({"model": name, "batch_size": batch, "seq_len": seq_len, "ms_per_step": families})
        print(f"{name} {shape} (ms/step, profiler self time)")
        for key, fams in families.items():
            shares = ", ".join(f"{f} {ms:.1f}" for f, ms in fams.items())
            print(f"  {key:16s} total {sum(fams.values()):8.1f}  {shares}")
    bt.write_report(report, args.out)


if __name__ == "__main__":
    main()
