"""scripts/bench/distill.py --quick: both SDTT targets and DCD are distilled with the settings the results name, the
teacher is also sampled at a lower temperature (the entropy-matched baseline)."""

from __future__ import annotations

import scripts.bench.distill as bench


def test_quick_pipeline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # results go to runs/distill.{json,png}
    payload = bench.main(["--quick"])
    families = payload["families"]
    assert {name: f["distill_settings"]["target"] for name, f in families.items() if f["method"] == "sdtt"} == {
        "masked": "sampled", "masked_law": "law"}
    assert families["uniform"]["method"] == "dcd"
    for family in families.values():
        curves = family["curves"]
        assert set(curves) == {"teacher", "teacher_T0.8", "student_4", "student_2"}
        assert [r["steps"] for r in curves["teacher_T0.8"]] == [2, 4, 8]
        assert curves["teacher_T0.8"] != curves["teacher"]  # another sampler, other samples
    assert (tmp_path / "runs/distill.json").is_file() and (tmp_path / "runs/distill.png").is_file()

