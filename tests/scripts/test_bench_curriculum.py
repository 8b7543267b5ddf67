"""scripts/bench/curriculum.py --quick: the arms differ only in objective.curriculum, the published deltas are the
paired differences of the rows, and a second call reuses the trained runs."""

from __future__ import annotations

import json

import pytest

import scripts.bench.curriculum as bench


def test_quick_pipeline(tmp_path, monkeypatch):
    argv = ["--quick", "--arms", "plain,sharp", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    payload = bench.main(argv)
    rows = {r["arm"]: r for r in payload["rows"]}
    steps = payload["settings"]["steps"]
    assert rows["plain"]["curriculum"] == [] and f"objective.curriculum.end={steps // 2}" in rows["sharp"]["curriculum"]
    plain_run, sharp_run = (bench.run_overrides(payload["settings"], arm, 0, tmp_path) for arm in ("plain", "sharp"))
    assert sharp_run == plain_run + rows["sharp"]["curriculum"]  # the same backbone, data, budget and seed
    assert sorted(rows["plain"]["val_nll"]) == list(range(2, steps + 1, 2))
    delta = rows["sharp"]["val_nll"][steps] - rows["plain"]["val_nll"][steps]
    assert payload["summary"]["sharp"]["delta_val_nll_vs_plain"] == [pytest.approx(delta)]
    assert delta != 0.0  # the curriculum changed the run
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["provenance"]["command"] == "python -m scripts.bench.curriculum" and (tmp_path / "out.png").is_file()

    def no_training(cfg, **kwargs):
        raise AssertionError("a matching run is reused, not retrained")

    monkeypatch.setattr("dlm.train.loop.train", no_training)
    assert bench.main(argv)["rows"] == payload["rows"]
