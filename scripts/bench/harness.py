"""The one harness every benchmark, experiment and example shares: provenance, JSON + PNG results, timing medians,
and where results go.

    from scripts.bench.harness import write_outputs, median, median_ratio, results_path
    write_outputs("benchmarks/bench_x", payload, plot, command="scripts.bench.x", arguments=vars(args))

A results file carries the provenance that produced it (command, arguments, git commit and whether the tree was
dirty, versions, host, threads, UTC time: `dlm.eval.report.provenance`), so every number in benchmarks/ can be
traced to the code that measured it. Experiments write under runs/ unless asked to publish (`results_path`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dlm.eval.report import provenance, write_json

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "benchmarks"  # the shipped results; written only on an explicit --publish


def write_outputs(out: str | Path, payload: dict, plot: Callable[[Path], None] | None = None, *,
                  command: str | None = None, arguments: dict[str, Any] | None = None) -> None:
    """Write payload (+ its provenance when `command` is given) to OUT.json and plot(OUT.png); print the paths."""
    path = Path(out)
    if command is not None:
        payload = {"provenance": provenance(command, arguments or {}), **payload}
    write_json(str(path.with_suffix(".json")), payload)
    written = [path.with_suffix(".json")]
    if plot is not None:
        plot(path.with_suffix(".png"))
        written.append(path.with_suffix(".png"))
    print("wrote " + " and ".join(str(p) for p in written))


def results_path(name: str, *, publish: bool, runs: str | Path = "runs") -> Path:
    """Where an experiment writes `name`: benchmarks/<name> with publish=True, else <runs>/<name> (the default, so a
    trial run never overwrites the shipped results)."""
    return (PUBLISHED if publish else Path(runs)) / name


def median(values: Sequence[float]) -> float:
    """The median of timing samples (robust to the stragglers of a shared machine)."""
    return float(statistics.median(values))


def median_ratio(anchor: Sequence[float], ours: Sequence[float]) -> float:
    """Median over paired rounds of anchor_i / ours_i: a speed ratio that cancels load that drifts between rounds."""
    return median([a / o for a, o in zip(anchor, ours)])
