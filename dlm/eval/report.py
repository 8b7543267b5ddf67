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
            "device": "cuda" if torch.cuda.is_available() else "cpu", "torch_threads": torch.get_num_threads(),
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
            "schedule": cfg.process.schedule.name, "attention": model.objective.attention.value,
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
    """For each bound row, ppl / ppl of the exact row on the same scored tokens (equal blocks_sha1, which covers
    the token ids, the padding and the scored positions): exp((NLL_diffusion - NLL_AR) / n) over the same n tokens.
    The reference is the row whose estimator is "exact": the AR baseline (or a block-size-1 block diffusion model).

    Returns rows {checkpoint, dataset, reference, ratio, ratio_se, num_tokens} (ratio_se by the delta method, the
    two estimates being independent; the AR perplexity is exact so only the diffusion se enters).
    """
    ar = {r["blocks_sha1"]: r for r in rows if r.get("estimator") == "exact"}
    out = []
    for row in rows:
        ref = ar.get(row["blocks_sha1"])
        if row.get("estimator") == "exact" or ref is None:
            continue
        ratio = row["ppl"] / ref["ppl"]
        out.append({"checkpoint": row["checkpoint"], "dataset": row["dataset"], "reference": ref["checkpoint"],
                    "ratio": ratio, "ratio_se": ratio * math.hypot(row["nll_se"], ref["nll_se"]),
                    "num_tokens": row["num_tokens"]})
    return out


CORPUS_KEYS = ("dataset", "split", "source", "blocks_sha1", "num_tokens", "num_blocks", "num_rows", "scored_positions",
               "oov_tokens", "oov_stream_tokens", "oov_rate", "exclude_oov")


def corpus_summaries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per dataset and scored token set (models with another tokenizer or length get their own): what
    was scored, how many tokens, the OOV count, and which checkpoints."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        entry = groups.setdefault((row["dataset"], row["blocks_sha1"]), {k: row.get(k) for k in CORPUS_KEYS})
        entry.setdefault("checkpoints", []).append(row["checkpoint"])
    return list(groups.values())


def _short_name(checkpoint: str) -> str:
    """`runs/x/final` -> `x/final`: the last two path parts, since run outputs all end in final/ or model/."""
    return "/".join(Path(checkpoint).parts[-2:])


def format_table(rows: list[dict[str, Any]], ratios: list[dict[str, Any]] | None = None) -> str:
    """Plain-text table: one line per dataset and token set (tokens, scored positions, OOV rate), then per model
    PPL ± se, bits/token, estimator and the ratio to the AR model on the same tokens."""
    ratio_of = {(r["checkpoint"], r["dataset"]): r for r in ratios or []}
    header = ["model", "ppl", "± se", "bits/tok", "estimator", "/AR"]
    out = []
    for corpus in corpus_summaries(rows):
        oov = corpus.get("oov_rate") or 0.0
        out.append(f"{corpus['dataset']} ({corpus['split']}): {corpus['num_tokens']} scored tokens in "
                   f"{corpus['num_blocks']} blocks, OOV {100 * oov:.2f}%"
                   + (" (excluded)" if corpus.get("exclude_oov") else "") + f"; {corpus['scored_positions']}")
        lines = [header]
        for row in rows:
            if (row["dataset"], row["blocks_sha1"]) != (corpus["dataset"], corpus["blocks_sha1"]):
                continue
            ratio = ratio_of.get((row["checkpoint"], row["dataset"]))
            lines.append(["  " + _short_name(row["checkpoint"]), f"{row['ppl']:.3f}", f"{row['ppl_se']:.3f}",
                          f"{row['bits_per_token']:.4f}", f"{row['estimator']}(n_t={row['n_t']})",
                          f"{ratio['ratio']:.3f}±{ratio['ratio_se']:.3f}" if ratio else "-"])
        lines[0] = ["  " + lines[0][0], *lines[0][1:]]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    return "\n".join(out)
