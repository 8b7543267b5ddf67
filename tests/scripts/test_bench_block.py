"""scripts/bench/block.py on a tiny backbone: the published fields are consistent with each other (ratios are times
over AR's, the counted NFE and backbone tokens are what each method's decoding does), the AR row is exact (zero
standard error) on the same scored tokens as a diffusion row, and the gap fraction is the one its formula gives."""

from __future__ import annotations

import math

import pytest

import scripts.bench.block as bench
from scripts.bench.block import PRESETS, gap_closed, main, random_model, run_overrides, sampling_cost, score

TINY = {**PRESETS["quick"], "lengths": [16, 32], "rounds": 1, "mdlm_steps": 4, "eval_blocks": 2, "n_t": 2,
        "seq_len": 32}


def test_sampling_rows_are_consistent():
    cost = sampling_cost(TINY)
    rows = {(r["method"], r["length"]): r for r in cost["rows"]}
    assert {m for m, _ in rows} == {"ar", "bd3lm_4", "bd3lm_16", "mdlm"}
    for (method, length), row in rows.items():
        assert row["ratio_to_ar"] == pytest.approx(row["seconds"] / rows[("ar", length)]["seconds"])
        if method == "ar":  # KV cache: one new token per call after the BOS prompt
            assert row["nfe"] == row["backbone_tokens"] == length - 1
        elif method == "mdlm":  # NFE = L full-length forwards
            assert row["nfe"] == length and row["backbone_tokens"] == length * length
        else:  # exact block cache: each call reads one block; at most L steps plus one clean pass per block
            block = int(method.split("_")[1])
            assert row["backbone_tokens"] == block * row["nfe"]
            assert length // block <= row["nfe"] <= length + length // block - 1
    for method, exponent in cost["growth_exponent"].items():
        (t1, t2) = (rows[(method, n)]["seconds"] for n in TINY["lengths"])
        assert exponent == pytest.approx(math.log(t2 / t1) / math.log(2))  # two lengths: the slope through both
    parameters = cost["parameters"]
    assert parameters["mdlm"] == parameters["bd3lm_4"] == parameters["bd3lm_16"]  # one backbone, no time input


def test_ar_is_exact_on_the_diffusion_rows_tokens(tmp_path):
    rows = {}
    for name, config in (("ar", "shakespeare_ar"), ("mdlm", "shakespeare_mdlm")):
        random_model(config, [f"data.seq_len={TINY['seq_len']}"], TINY, TINY["seq_len"]).save_pretrained(
            str(tmp_path / name))
        rows[name] = score(tmp_path / name, TINY)
    assert rows["ar"]["estimator"] == "exact" and rows["ar"]["nll_se"] == 0.0
    assert rows["mdlm"]["nll_se"] > 0.0
    assert rows["ar"]["blocks_sha1"] == rows["mdlm"]["blocks_sha1"]
    assert rows["ar"]["tokens"] == rows["mdlm"]["tokens"] == TINY["eval_blocks"] * (TINY["seq_len"] - 2)


def test_gap_fraction_and_its_standard_error():
    rows = {"ar": {"nll": 1.0, "nll_se": 0.0}, "mdlm": {"nll": 3.0, "nll_se": 0.1}, "bd3lm_4": {"nll": 2.5,
                                                                                               "nll_se": 0.1}}
    gap = gap_closed(rows)
    assert gap["fraction"] == pytest.approx(0.25)
    assert gap["fraction_se"] == pytest.approx(math.sqrt((0.1 / 2) ** 2 + (0.1 * 1.5 / 4) ** 2))


def test_families_trains_only_the_named_rows_and_seeds_every_run(tmp_path, monkeypatch):
    trained = []

    def fake_train_and_score(family, settings, runs):  # the row a run would give, without training
        trained.append(family)
        nll = {"ar": 1.0, "mdlm": 3.0, "bd3lm_4": 2.5}[family]
        return {"family": family, "nll": nll, "nll_se": 0.0 if family == "ar" else 0.1, "blocks_sha1": "same"}

    monkeypatch.setattr(bench, "train_and_score", fake_train_and_score)
    payload = main(["--quick", "--parts", "likelihood", "--families", "bd3lm_4,ar,mdlm", "--seed", "3", "--runs",
                    str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    assert sorted(trained) == ["ar", "bd3lm_4", "mdlm"]
    likelihood = payload["likelihood"]
    assert [r["family"] for r in likelihood["rows"]] == ["ar", "mdlm", "bd3lm_4"]  # the published order
    assert likelihood["gap_closed"]["fraction"] == pytest.approx(0.25)
    assert "gap_closed_finetuned" not in likelihood  # no fine-tuned row was trained
    assert "train.seed=3" in run_overrides(payload["settings"], 10, tmp_path)
    with pytest.raises(SystemExit):  # an unknown family is a one-line argparse error
        main(["--quick", "--parts", "likelihood", "--families", "ar,bd3lm_5"])
