"""Exact error of every stage sampler versus denoiser evaluations (NFE) on enumerable toys, with fitted orders.

No Monte Carlo: dlm.sample.exact composes each sampler's step kernels over all states in float64, driven by an exact
oracle denoiser (dlm.testing). Suites:
  fs1_masked         FS-1 (docs/samplers.md): L=2, K=3, Dirichlet(2) target, alpha_t = 1 - t, from t=1 to delta=0.1
  uniform_order      FS-1 under uniform noise: L=2, K=3, sigma(t) = 3t, from the exact p_1 to t=0
  toy3_absorbing     the spiky 3-token test toy, LogLinear(1e-3), from all masks to eps=1e-5 plus noise removal
  toy3_uniform       the same toy under uniform noise, from the uniform prior, plus noise removal
Writes JSON (TV, NFE, fitted order of TV vs NFE over the finest points, NFE to reach each target TV) and a PNG.

    python -m scripts.bench.samplers --out benchmarks/bench_samplers    # writes OUT.json and OUT.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dlm.process import Absorbing, Uniform
from dlm.sample import get_sampler
from dlm.sample.exact import exact_law, total_variation
from dlm.testing import Tabulated, ToyDistribution, fitted_order
from dlm.testing.orders import fs1_masked, uniform_order_toy
from scripts.bench.harness import write_outputs

TOY = ToyDistribution(length=3, vocab=3, seed=1)  # the spiky non-factorized toy of the sampler tests
PROCESSES = {"absorbing": lambda: Absorbing(3), "uniform": lambda: Uniform(3)}
SAMPLERS = [("ancestral", {}), ("analytic", {}), ("euler", {}), ("tau_leaping", {}),
            ("theta_trapezoidal", {"theta": 0.5}), ("theta_trapezoidal", {"theta": 0.3}), ("theta_rk2", {"theta": 0.5})]


def suites():
    """name -> (description, oracle, process, length, eps, initial law or None, finish, target law over clean states)"""
    toy, process, target = fs1_masked()
    yield "fs1_masked", "FS-1: L=2 Dirichlet(2), alpha=1-t, t: 1 -> 0.1, vs exact p_0.1", \
        Tabulated(toy, process), process, 2, 0.1, None, False, target
    toy, process, start = uniform_order_toy()
    yield "uniform_order", "uniform L=2 Dirichlet(2), sigma=3t, exact p_1 -> t=0, vs p_data", \
        Tabulated(toy, process), process, 2, 0.0, start, False, toy.probs
    for name in ("absorbing", "uniform"):
        process = PROCESSES[name]()
        yield f"toy3_{name}", f"spiky L=3 toy, {name}, prior -> eps=1e-5 -> noise removal, vs p_data", \
            Tabulated(TOY, process), process, 3, 1e-5, None, True, TOY.probs


def clean(law, process, length, finish):
    """After noise removal an absorbing law lives on the clean states; drop the (empty) mask rows."""
    if not finish or process.width == 3:
        return law
    return law.reshape([process.width] * length)[(slice(0, 3),) * length].reshape(-1)


def nfe_to_reach(nfe: list[int], tv: list[float], target: float) -> float | None:
    """NFE where TV first falls to `target`, interpolated log-log between the bracketing step counts."""
    for (n0, e0), (n1, e1) in zip(zip(nfe, tv), zip(nfe[1:], tv[1:])):
        if e0 > target >= e1:
            return float(np.exp(np.log(n0) + (np.log(target) - np.log(e0)) * np.log(n1 / n0) / np.log(e1 / e0)))
    return float(nfe[0]) if tv and tv[0] <= target else None


def run_suite(oracle, process, length, eps, initial, finish, target, steps_list, targets):
    results = {}
    for name, options in SAMPLERS:
        sampler = get_sampler(name, eps=eps, **options)
        label = name + (f"(theta={options['theta']})" if options else "")
        start = time.time()
        tv = [total_variation(clean(exact_law(sampler, oracle, process, steps=n, length=length, initial=initial,
                                              finish=finish), process, length, finish), target) for n in steps_list]
        nfe = [sampler.stages * n + int(finish) for n in steps_list]
        results[label] = {"steps": steps_list, "nfe": nfe, "tv": tv, "order": fitted_order(nfe[-4:], tv[-4:]),
                          "nfe_to_tv": {f"{t:g}": nfe_to_reach(nfe, tv, t) for t in targets},
                          "seconds": round(time.time() - start, 2)}
        reach = "  ".join(f"NFE(TV<={k})={v and round(v)}" for k, v in results[label]["nfe_to_tv"].items())
        print(f"  {label:28s} order {results[label]['order']:.2f}  TV@{nfe[-1]} NFE {tv[-1]:.2e}  {reach}")
    return results


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["suites"])
    fig, axes = plt.subplots(2, (len(names) + 1) // 2, figsize=(12, 9), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for label, row in report["suites"][name]["samplers"].items():
            ax.loglog(row["nfe"], row["tv"], marker="o", ms=3, label=f"{label}: order {row['order']:.2f}")
        ax.set_title(f"{name}\n{report['suites'][name]['description']}", fontsize=8)
        ax.set_xlabel("denoiser evaluations (NFE)")
        ax.set_ylabel("exact total variation")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench/bench_samplers", help="writes OUT.json and OUT.png")
    parser.add_argument("--max-steps", type=int, default=256, help="largest step count (powers of 2 from 2)")
    parser.add_argument("--targets", default="1e-2,1e-3", help="comma-separated TV levels for NFE-to-reach")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest for toys)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps_list = [2 ** k for k in range(1, int(np.log2(args.max_steps)) + 1)]
    targets = [float(t) for t in args.targets.split(",")]
    report = {"settings": vars(args), "steps": steps_list, "suites": {}}
    for name, description, oracle, process, length, eps, initial, finish, target in suites():
        print(f"{name}: {description}")
        report["suites"][name] = {"description": description, "samplers": run_suite(
            oracle, process, length, eps, initial, finish, target, steps_list, targets)}
    write_outputs(args.out, report, lambda path: plot(report, path), command="scripts.bench.samplers",
                  arguments=vars(args))


if __name__ == "__main__":
    main()
