"""Self-describing results: provenance (dlm version, git commit, checkpoint hash, command), JSON files, tables.

Every results file written by `dlm eval ...` holds enough to rerun any number in it: the checkpoint path and the
sha256 of its weights, the git commit of the code (and whether the tree had local changes), the exact command
arguments, the seed and every estimator setting.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


def git_commit() -> dict[str, Any]:
    """{'commit': sha or 'unknown', 'dirty': bool | None} of the repository holding this dlm package."""
    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout

    try:
        commit = run("rev-parse", "HEAD").strip()
        dirty = bool(run("status", "--porcelain", "--untracked-files=no").strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", None
    return {"commit": commit or "unknown", "dirty": dirty}


def provenance(command: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """What produced a results file: command and arguments, versions, git commit, host, UTC time."""
    import dlm

    return {"command": command, "arguments": arguments, "dlm_version": dlm.__version__, "git": git_commit(),
            "torch_version": torch.__version__, "python": sys.version.split()[0], "host": platform.node(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def checkpoint_info(path: str, model) -> dict[str, Any]:
    """Checkpoint path (absolute), sha256 of its weights, and the model's objective / process / size."""
    weights = Path(path) / "model.safetensors"
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            digest.update(chunk)
    cfg = model.config
    return {"checkpoint": str(Path(path).resolve()), "weights_sha256": digest.hexdigest(),
            "objective": cfg.objective.name, "process": "none" if model.process is None else cfg.process.name,
            "schedule": cfg.process.schedule.name, "autoregressive": model.objective.causal,
            "parameters": model.num_parameters(), "train_seq_len": cfg.data.seq_len}


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Write `payload` as indented JSON (NaN/inf become null), creating parent folders."""
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    Path(path).expanduser().write_text(json.dumps(_finite(payload), indent=2, default=str) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def ar_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each diffusion row, ppl / ppl of the AR row on the same tokens (equal blocks_sha1).

    Returns rows {checkpoint, dataset, reference, ratio, ratio_se} (ratio_se by the delta method, the two
    estimates being independent; the AR perplexity is exact so only the diffusion se enters).
    """
    ar = {r["blocks_sha1"]: r for r in rows if r.get("autoregressive")}
    out = []
    for row in rows:
        ref = ar.get(row["blocks_sha1"])
        if row.get("autoregressive") or ref is None:
            continue
        ratio = row["ppl"] / ref["ppl"]
        out.append({"checkpoint": row["checkpoint"], "dataset": row["dataset"], "reference": ref["checkpoint"],
                    "ratio": ratio, "ratio_se": ratio * math.hypot(row["nll_se"], ref["nll_se"])})
    return out


def _short_name(checkpoint: str) -> str:
    """`runs/x/final` -> `x/final`: the last two path parts, since run outputs all end in final/ or model/."""
    return "/".join(Path(checkpoint).parts[-2:])


def format_table(rows: list[dict[str, Any]], ratios: list[dict[str, Any]] | None = None) -> str:
    """Plain-text table: model, dataset, split, PPL ± se, bits/token, tokens, estimator, and the AR ratio."""
    ratio_of = {(r["checkpoint"], r["dataset"]): r for r in ratios or []}
    header = ["model", "dataset", "split", "ppl", "± se", "bits/tok", "tokens", "estimator", "/AR"]
    lines = [header]
    for row in rows:
        ratio = ratio_of.get((row["checkpoint"], row["dataset"]))
        lines.append([_short_name(row["checkpoint"]), row["dataset"], row["split"], f"{row['ppl']:.3f}",
                      f"{row['ppl_se']:.3f}", f"{row['bits_per_token']:.4f}", str(row["num_tokens"]),
                      f"{row['estimator']}(n_t={row['n_t']})",
                      f"{ratio['ratio']:.3f}±{ratio['ratio_se']:.3f}" if ratio else "-"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
