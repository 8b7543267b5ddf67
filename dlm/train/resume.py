"""What `--resume` may change: the run's saved config (out_dir/config.yaml) is the truth, and only settings that
cannot change what the checkpoints mean may differ from it.

Safe to change on resume (SAFE_ON_RESUME): train.steps (extend or shorten the run; the cosine LR schedule is
re-derived from the new length, and a longer run replaces final/ at its new end), train.lr (the new peak lr
applies from the next step, e.g. lowered after a divergence), how often to log / evaluate / save, the progress
bar, TensorBoard, and what to do on a non-finite step. Anything else (model, process,
objective, data, lr, batch, seed, ...) would make the resumed run a different run than its checkpoints: refused
with the differing keys listed. From the CLI (`train_command`) a resume starts from the saved config, with only
the explicit `key=value` overrides applied, so a run started with overrides resumes with them.

`--resume` where train.out_dir holds no checkpoint yet (a preemptible job's first launch, or a requeue of one killed
before its first save) starts a fresh run with a one-line note, as torchtitan and Lightning's ckpt_path="last" do,
so one command serves the first launch and every requeue: allowed when out_dir is missing, empty, or holds only
what a run writes before its first checkpoint (RUN_FILES). Anything else there (final/, step directories that do
not load, a `latest` pointer, files of another program) could be data: refused (`check_fresh_start`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from dlm.config import RunConfig, load_config, to_dict
from dlm.registry import ConfigError
from dlm.train.checkpoint import (
    FINAL_DIR,
    checkpoint_root,
    clean_interrupted_writes,
    has_checkpoints,
    is_interrupted_write,
    resume_state,
)

CONFIG_FILE = "config.yaml"
# what a run writes before its first checkpoint (a task run writes its tokenizer first: dlm/tasks/commands.py)
RUN_FILES = frozenset({CONFIG_FILE, "metrics.jsonl", "tensorboard", "task_tokenizer"})
SAFE_ON_RESUME = frozenset({"train.steps", "train.lr", "train.eval_every", "train.log_every", "train.save_every",
                            "train.progress", "train.tensorboard", "train.on_nonfinite"})


def flat(cfg: RunConfig) -> dict[str, Any]:
    """{'train.lr': 3e-4, 'model.d_model': 256, ...}: every leaf of the config under its dotted key."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[prefix + key] = value

    walk(to_dict(cfg), "")
    return out


def differing_keys(a: RunConfig, b: RunConfig) -> list[str]:
    fa, fb = flat(a), flat(b)
    return sorted(key for key in fa if fa[key] != fb.get(key))


def saved_config(out_dir: str | Path) -> RunConfig | None:
    """The config a run in out_dir was started with, or None when it has none (or it is unreadable)."""
    path = Path(out_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return load_config(path)
    except ConfigError:
        return None


def check_resume_config(cfg: RunConfig, saved: RunConfig | None) -> None:
    """One-line ConfigError when cfg differs from the run's saved config in a key that is not safe to change."""
    if saved is None:
        return
    unsafe = [key for key in differing_keys(cfg, saved) if key not in SAFE_ON_RESUME and key != "train.out_dir"]
    if unsafe:
        flat_cfg, flat_saved = flat(cfg), flat(saved)
        changes = ", ".join(f"{key}: {flat_saved[key]!r} -> {flat_cfg[key]!r}" for key in unsafe[:6])
        more = f" (+{len(unsafe) - 6} more)" if len(unsafe) > 6 else ""
        raise ConfigError(f"--resume of {cfg.train.out_dir} with a config that differs from the run's own in "
                          f"{changes}{more}; only {', '.join(sorted(SAFE_ON_RESUME))} may change on resume: drop "
                          "those overrides, or train into a new train.out_dir")


def state_to_resume(out_dir: Path, *, resume: bool, run: str, flag: str) -> dict[str, Any] | None:
    """The trainer state a single-process run (`dlm rl`, `dlm distill`, `dlm vq train`) continues from, or None for
    a fresh start, by `dlm train`'s rules: without resume, an out_dir that already holds a run (checkpoints or
    final/) is a one-line ConfigError naming `run` ("an RL run") and the output flag; temporaries of killed writes
    are removed; with resume, the latest loadable checkpoint (resume_state: falls back past a damaged one), or, where
    none exists yet (a preemptible job's first launch), a fresh start that check_fresh_start allows."""
    root = checkpoint_root(out_dir)
    if not resume and (has_checkpoints(root) or (out_dir / FINAL_DIR).exists()):
        raise ConfigError(f"{out_dir} already holds {run}; pass --resume to continue it, or choose another {flag}")
    clean_interrupted_writes(out_dir, root)
    if resume and has_checkpoints(root):
        return resume_state(root)[1]
    if resume:
        check_fresh_start(out_dir, root)
    return None


def check_fresh_start(out_dir: Path, checkpoints: Path) -> None:
    """One-line ConfigError unless a --resume that finds no checkpoint may start over in out_dir: out_dir missing or
    holding only RUN_FILES and a `checkpoints` folder with nothing but temporaries of killed writes."""
    if not out_dir.is_dir():
        return
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in RUN_FILES and p != checkpoints)
    if checkpoints.is_dir():
        foreign += sorted(f"{checkpoints.name}/{p.name}" for p in checkpoints.iterdir()
                          if not is_interrupted_write(p.name))
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise ConfigError(f"cannot resume: {out_dir} holds no loadable checkpoint but holds {shown}, which a fresh "
                          "start could overwrite; move them away, or train into a new train.out_dir")


def resume_config(config: str | Path | None, overrides: list[str]) -> RunConfig:
    """The config of a CLI resume: the run's saved config with the explicit overrides applied.

    The YAML file only locates the run (its train.out_dir, unless overridden); where it differs from the saved
    config the saved values win, with a warning naming the keys.
    """
    given = load_config(config, overrides)
    out_dir = given.train.out_dir
    saved_path = Path(out_dir) / CONFIG_FILE
    if saved_config(out_dir) is None:
        return given
    cfg = load_config(saved_path, [*overrides, f"train.out_dir={out_dir}"])
    ignored = [key for key in differing_keys(given, cfg) if key not in SAFE_ON_RESUME]
    if ignored:
        warnings.warn(f"resuming with the run's saved config {saved_path}, which differs from {config} in "
                      f"{', '.join(ignored[:6])}{' ...' if len(ignored) > 6 else ''}", stacklevel=2)
    return cfg
