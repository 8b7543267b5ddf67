"""Experiments write under runs/ by default; only an explicit --publish writes into benchmarks/ (the shipped results).
A tiny reasoning run (2 steps, 4 puzzles) without the flag leaves benchmarks/ byte for byte as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from scripts.experiments import reasoning

REPO = Path(__file__).resolve().parents[2]
TINY = "model.d_model=32 model.n_layers=1 model.n_heads=2 model.cond_dim=16 model.max_len=64"


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_reasoning_run_without_publish_leaves_benchmarks_untouched(tmp_path):
    before = _tree_digest(REPO / "benchmarks")
    runs = tmp_path / "runs"
    reasoning.main(["--tasks", "sudoku4x4", "--families", "mdlm", "--milestones", "2", "--eval-limit", "4",
                    "--batch-size", "4", "--runs", str(runs), "--overrides", TINY])
    assert _tree_digest(REPO / "benchmarks") == before
    (point,) = json.loads((runs / "reasoning.json").read_text())["points"]
    assert point["task"] == "sudoku4x4" and point["eval_n"] == 4


def test_publish_is_what_points_the_default_outputs_at_benchmarks(tmp_path):
    plain = reasoning.parse_args(["--runs", str(tmp_path)])
    published = reasoning.parse_args(["--runs", str(tmp_path), "--publish"])
    assert Path(plain.out) == tmp_path / "reasoning.json" and Path(plain.plot) == tmp_path / "reasoning.png"
    assert Path(published.out) == REPO / "benchmarks" / "reasoning.json"
    assert Path(published.plot) == REPO / "benchmarks" / "reasoning.png"
