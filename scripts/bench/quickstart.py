"""The quickstart, measured: runs `bash scripts/quickstart.sh` end to end and records its wall time (with the machine's
load), the validation bound of the model it trains (nats/token, and nats/character over the validation text), the
share of corpus words its samples print, that share again for more sample seeds (the quickstart's own `dlm sample`
line with only --seed changed: one seed is a handful of samples), and the samples and infillings themselves.

    python -m scripts.bench.quickstart [--seeds 5] [--publish] [override ...]   # overrides go to the quickstart

Writes runs/quickstart.json, or benchmarks/quickstart.json with --publish (the README's quickstart sentence is
regenerated from it by scripts/bench/readme_numbers.py). Wall times on a shared machine are inflated by the other
jobs: the load average before and after is recorded beside them, and OMP_NUM_THREADS (on an oversubscribed machine
one thread per process wastes less time waiting for descheduled threads than two).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from scripts.bench.harness import REPO, results_path, write_outputs

SCRIPT = REPO / "scripts" / "quickstart.sh"
CORPUS_LINE = re.compile(r"corpus words: ([\d.]+)% of the (\d+) whitespace-separated words")


def quickstart_run_dir(script: str) -> str:
    """The run folder the quickstart trains into (its `RUN=` line)."""
    return re.search(r"^RUN=(\S+)$", script, re.M).group(1)


def quickstart_sample_argv(script: str, run_dir: str) -> list[str]:
    """The quickstart's `$DLM sample ...` line as `dlm` arguments (continuations joined, $RUN filled in)."""
    joined = re.sub(r"\\\n\s*", " ", script)
    line = next(text for text in joined.splitlines() if text.strip().startswith("$DLM sample"))
    return shlex.split(line.strip().removeprefix("$DLM ").replace("$RUN", run_dir))


def with_seed(argv: list[str], seed: int) -> list[str]:
    index = argv.index("--seed")
    return [*argv[:index + 1], str(seed), *argv[index + 2:]]


def corpus_fraction(output: str) -> tuple[float, int]:
    """(percent, words) of the last `corpus words:` line `dlm sample --corpus-words` printed."""
    percent, words = CORPUS_LINE.findall(output)[-1]
    return float(percent), int(words)


def validation_chars_per_token(run_dir: Path) -> float:
    """Characters per token of the run's tokenizer over its validation documents (nats/char = nats/token / this)."""
    import dlm
    from dlm.data.splits import split_documents

    model = dlm.DiffusionLM.from_pretrained(str(run_dir / "final"))
    documents = split_documents(model.config.data)[1]
    tokens = sum(len(model.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in documents)
    return sum(map(len, documents)) / tokens


def sample_seed(argv: list[str]) -> tuple[float, int]:
    from dlm.cli import main as dlm_main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = dlm_main(argv)
    if code:
        raise SystemExit(f"error: dlm {' '.join(argv)} exited {code}")
    return corpus_fraction(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="sample seeds 0 .. seeds-1 for the corpus-word share")
    parser.add_argument("--publish", action="store_true", help="write benchmarks/quickstart.json (else runs/)")
    parser.add_argument("overrides", nargs="*", help="config overrides passed to the quickstart")
    args = parser.parse_args()

    script = SCRIPT.read_text()
    run_dir = quickstart_run_dir(script)
    load_before = os.getloadavg()
    start = time.perf_counter()
    done = subprocess.run(["bash", str(SCRIPT), *args.overrides], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    sys.stdout.write(done.stdout)
    if done.returncode:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"error: the quickstart exited {done.returncode}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)

    metrics = [json.loads(line) for line in (REPO / run_dir / "metrics.jsonl").read_text().splitlines()]
    val_nll = [m["val_nll"] for m in metrics if "val_nll" in m][-1]
    chars_per_token = validation_chars_per_token(REPO / run_dir)
    printed = corpus_fraction(done.stdout)
    sample_argv = quickstart_sample_argv(script, run_dir)
    per_seed = [printed] + [sample_seed(with_seed(sample_argv, seed)) for seed in range(1, args.seeds)]
    percents = [percent for percent, _ in per_seed]
    payload = {
        "config": re.search(r"--config (\S+)", script).group(1), "overrides": args.overrides,
        "wall_s": wall, "cpu_s": children.ru_utime + children.ru_stime,
        "loadavg_before": load_before, "loadavg_after": load_after, "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "steps": metrics[-1]["step"], "val_nll_per_token": val_nll, "chars_per_token": chars_per_token,
        "val_nll_per_char": val_nll / chars_per_token,
        "corpus_words_printed_percent": printed[0], "sample_command": ["dlm", *sample_argv],
        "corpus_words_percent_per_seed": percents, "words_per_seed": [words for _, words in per_seed],
        "corpus_words_percent_mean": statistics.mean(percents), "output": done.stdout,
    }
    seeds = ", ".join(f"{percent:.1f}" for percent in percents)
    print(f"quickstart: {wall:.0f} s wall (load {load_before[0]:.1f} -> {load_after[0]:.1f}), bound "
          f"{val_nll:.3f} nats/token = {val_nll / chars_per_token:.3f} nats/char, corpus words "
          f"{statistics.mean(percents):.1f}% over seeds 0..{args.seeds - 1} ({seeds})")
    write_outputs(results_path("quickstart", publish=args.publish), payload, command="scripts.bench.quickstart",
                  arguments=vars(args))


if __name__ == "__main__":
    main()
