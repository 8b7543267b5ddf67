"""scripts/bench/decode.py: the per-row NFE it reports (each row's own denoiser calls, not the batch's) and how it
reads the issue's targets off its rows."""

from __future__ import annotations

import torch

from scripts.bench import decode
from tests.cache.helpers import tiny_model

L = 24


def _nfe(model, spec: str, steps: int, rows: list[int]) -> torch.Tensor:
    setting = decode.Setting("x", spec, steps)
    sampler = model.objective.sampler(spec, temperature=0.0)
    prompt = torch.randint(1, 10, (8, L), generator=torch.Generator().manual_seed(0))[rows]
    prompt_mask = torch.zeros(len(rows), L, dtype=torch.bool)
    prompt_mask[:, :4] = True
    return decode.run_once(model, setting, sampler, rows, prompt=prompt, prompt_mask=prompt_mask)[2]


def test_each_row_counts_its_own_calls():
    model = tiny_model("model.max_len=32", sharpen=3.0)  # confidences near the threshold: rows need 1 to 20 calls
    spec = "confidence:threshold=0.22"
    batch = _nfe(model, spec, L, list(range(8)))
    alone = torch.cat([_nfe(model, spec, L, [row]) for row in range(8)])
    assert torch.equal(batch, alone)  # greedy: a row decodes the same alone and in the batch
    assert len(set(batch.tolist())) > 1  # rows differ, so the batch's call count would be wrong for some
    assert (batch <= L - 4).all()  # never more calls than answer positions
    assert torch.equal(_nfe(model, "confidence", 5, list(range(8))), torch.full((8,), 5))  # fixed quota
    assert torch.equal(_nfe(model, "confidence:threshold=0", L, list(range(8))), torch.ones(8, dtype=torch.long))


def _row(family: str, nfe: float, ppl: float, entropy: float, steps: int = 128) -> dict:
    return {"family": family, "cache": "none", "label": f"{family}@{nfe}", "nfe": nfe, "nfe_reduction": 128 / nfe,
            "steps": steps, "gen_ppl": ppl, "entropy": entropy, "rel_gen_ppl": ppl / 100 - 1,
            "rel_entropy": entropy / 4 - 1}


def test_targets_need_both_fewer_nfe_and_equal_quality():
    rows = [_row("confidence", 128, 100, 4), _row("threshold", 40, 102, 4.02), _row("threshold", 20, 110, 3.9)]
    found = decode.targets({"text128": {"length": 128, "rows": rows}})["text128_threshold_2.5x_same_quality"]
    assert found["met"] and found["settings_meeting"] == ["threshold@40"]
    rows[1] = _row("threshold", 60, 102, 4.02)  # same quality, only 2.1x fewer NFE
    assert not decode.targets({"text128": {"length": 128, "rows": rows}})["text128_threshold_2.5x_same_quality"]["met"]


def test_remdm_targets_compare_with_the_best_ancestral_run():
    rows = [_row("confidence", 128, 100, 4), _row("ancestral", 64, 120, 4, 64), _row("ancestral", 128, 110, 4),
            _row("remdm:cap", 128, 112, 4), _row("remdm:cap", 256, 105, 3.95, 256),
            _row("remdm:cap", 512, 101, 3.93, 512)]
    found = decode.targets({"text128": {"length": 128, "rows": rows}})
    assert found["remdm_beats_best_ancestral"]["settings"] == ["remdm:cap@256", "remdm:cap@512"]
    assert found["remdm_improves_past_L"]["met"]
    rows[-1] = _row("remdm:cap", 512, 106, 3.93, 512)  # worse at 4L than at 2L: the curve stopped improving
    assert not decode.targets({"text128": {"length": 128, "rows": rows}})["remdm_improves_past_L"]["met"]
