"""scripts/bench/cache_quality.py, the statistics behind bench_cache's quality columns: the paired gen-PPL and entropy
ratios on exact toys (a constant per-token shift is an exact ratio with zero paired error; the unpaired error is the
textbook one), and exact-character infilling accuracy."""

from __future__ import annotations

import math

import pytest
import torch

from scripts.bench import cache_quality


def test_a_per_token_shift_is_an_exact_paired_ratio():
    base = {"nll": [200.0, 260.0, 230.0, 310.0], "n": [100, 100, 100, 100], "entropy": [2.0, 2.5, 2.2, 2.3]}
    shifted = {"nll": [s + 0.05 * c for s, c in zip(base["nll"], base["n"])], "n": base["n"],
               "entropy": [h * 1.01 for h in base["entropy"]]}
    q = cache_quality.quality(shifted, base)
    assert q["rel_gen_ppl"] == pytest.approx(math.exp(0.05) - 1, rel=1e-12)
    assert q["rel_gen_ppl_se"] == pytest.approx(0.0, abs=1e-12)
    assert q["rel_entropy"] == pytest.approx(0.01, rel=1e-9)
    # equal lengths: g = mean per-sample NLL per token, its error sd / sqrt(n)
    per_token = torch.tensor(base["nll"], dtype=torch.float64) / 100
    assert q["gen_ppl"] == pytest.approx(math.exp(float(per_token.mean()) + 0.05), rel=1e-12)
    own = cache_quality.quality(base, base)
    assert own["gen_ppl_se"] == pytest.approx(own["gen_ppl"] * float(per_token.std() / 2), rel=1e-9)
    assert own["rel_gen_ppl"] == 0 and own["rel_entropy_se"] == 0


def test_infill_accuracy_counts_only_the_span():
    truth = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    span = torch.tensor([[False, True, True, False], [True, True, True, True]])
    ids = torch.tensor([[9, 2, 0, 9], [5, 6, 7, 0]])
    out = cache_quality.infill_accuracy(ids, truth, span)
    assert out["infill_accuracy"] == pytest.approx((0.5 + 0.75) / 2)
    assert out["infill_accuracy_se"] == pytest.approx(0.125)
