"""scripts/gpu_check.sh: the --dry-run smoke mode runs every check on the CPU in seconds and writes its JSON; one
failing check is recorded without losing the others. The full run is a @pytest.mark.gpu test (skips without CUDA)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CHECKS = {"flash_vs_sdpa", "bf16_vs_fp32", "train_masked_elbo", "train_score_entropy", "train_autoregressive",
          "sample_dkv"}


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_dry_run_runs_every_check_and_writes_json(tmp_path):
    report = gpu_check().main(["--out-dir", str(tmp_path), "--dry-run"])
    saved = json.loads((tmp_path / "gpu_check_dry_run.json").read_text())
    assert saved["checks"].keys() == report["checks"].keys() == CHECKS
    assert all(check["ok"] for check in saved["checks"].values()), saved["checks"]
    for objective in ("masked_elbo", "score_entropy", "autoregressive"):
        assert saved["checks"]["bf16_vs_fp32"][objective]["relative_diff"] < 0.05
        assert saved["checks"][f"train_{objective}"]["tokens_per_s"] > 0
    assert saved["checks"]["sample_dkv"]["dkv_token_agreement"] > 0.5


def test_a_failing_check_is_recorded_and_the_rest_still_run(tmp_path, monkeypatch):
    module = gpu_check()

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory\nsecond line")

    monkeypatch.setattr(module, "check_bf16", broken)
    report = module.main(["--out-dir", str(tmp_path), "--dry-run"])
    assert report["checks"]["bf16_vs_fp32"] == {**report["checks"]["bf16_vs_fp32"], "ok": False,
                                                "error": "RuntimeError: out of memory"}
    assert all(report["checks"][name]["ok"] for name in CHECKS - {"bf16_vs_fp32"})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_full_gpu_check_passes(tmp_path):
    subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path)], check=True, timeout=600)
    checks = json.loads((tmp_path / "gpu_check.json").read_text())["checks"]
    assert checks.keys() == CHECKS and all(check["ok"] for check in checks.values()), checks
    for objective in ("masked_elbo", "score_entropy", "autoregressive"):
        assert checks["bf16_vs_fp32"][objective]["relative_diff"] < 0.02
        assert 0.05 < checks[f"train_{objective}"]["mfu"] < 1.0
    if "skipped" not in checks["flash_vs_sdpa"]:
        assert checks["flash_vs_sdpa"]["relative_l2"] < 0.02


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-CUDA message is for machines without CUDA")
def test_without_cuda_the_full_run_says_so_at_once_and_checks_nothing(tmp_path):
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)  # a hang guard: the full run took 8 min
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines() == ["no CUDA device: nothing to check (use --dry-run for the CPU smoke "
                                                "test)"]
    assert not (tmp_path / "out").exists()


def test_a_skipped_check_prints_skipped_never_ok(tmp_path, capsys):
    module = gpu_check()
    report = {"checks": {}}
    module.run_check(report, "flash_vs_sdpa", lambda: {"skipped": "flash-attn needs CUDA"}, tmp_path / "r.json")
    line = capsys.readouterr().out.strip()
    assert line.startswith("[gpu_check] flash_vs_sdpa: skipped (flash-attn needs CUDA)") and ": ok" not in line
    assert json.loads((tmp_path / "r.json").read_text())["checks"]["flash_vs_sdpa"]["skipped"]
