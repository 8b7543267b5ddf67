"""Atomic, resumable checkpoints.

    out_dir/checkpoints/
        step_000500/
            model/              the deployable model (EMA weights when EMA is on), an HF dir:
                                DiffusionLM.from_pretrained(".../step_000500/model") loads it
            trainer_state.pt    everything `--resume` needs: raw weights, EMA, optimizer, LR scheduler, step,
                                data position, elapsed time
        latest                  text file naming the newest complete checkpoint directory

A checkpoint is written into a hidden temporary directory next to its final place, every file and the directory
are fsync'ed, and only then is it renamed into place and `latest` replaced (itself written to a temporary file,
fsync'ed, os.replace'd). A run killed at any moment leaves either the previous or the new checkpoint, never half
of one. The newest KEEP checkpoints are kept.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dlm.registry import ConfigError

TRAINER_STATE = "trainer_state.pt"
MODEL_DIR = "model"
LATEST = "latest"
KEEP = 3
_STEP_DIR = re.compile(r"^step_(\d+)$")
REQUIRED_KEYS = ("step", "model", "optimizer", "scheduler", "data")


def checkpoint_root(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints"


def step_name(step: int) -> str:
    return f"step_{step:06d}"


def write_dir_atomically(final: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a fresh temporary directory beside `final`, fsync it, then rename it to `final`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write(tmp)
    _fsync_tree(tmp)
    if final.exists():  # re-saving a step (e.g. the last step after a resume): swap, then drop the old copy
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync_dir(final.parent)


def save_checkpoint(root: Path, step: int, trainer_state: dict[str, Any],
                    write_model: Callable[[Path], None], keep: int = KEEP) -> Path:
    """Write root/step_XXXXXX atomically, point `latest` at it, prune to the newest `keep`. Returns its path."""
    def write(tmp: Path) -> None:
        write_model(tmp / MODEL_DIR)
        torch.save(trainer_state, tmp / TRAINER_STATE)

    path = root / step_name(step)
    write_dir_atomically(path, write)
    _write_text_atomically(root / LATEST, path.name)
    for old in _step_dirs(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def latest_checkpoint(root: Path) -> Path:
    """The directory `latest` names. One-line ConfigError when there is none."""
    pointer = root / LATEST
    if not pointer.is_file():
        raise ConfigError(f"cannot resume: {root} holds no checkpoint (no '{LATEST}' file); "
                          "was the run killed before the first save? Start it again without --resume")
    path = root / pointer.read_text().strip()
    if not path.is_dir():
        raise ConfigError(f"cannot resume: {pointer} names {path.name}, which does not exist")
    return path


def load_trainer_state(path: Path) -> dict[str, Any]:
    """Read path/trainer_state.pt (on the CPU). One-line ConfigError when missing, unreadable or foreign."""
    file = path / TRAINER_STATE
    if not file.is_file():
        raise ConfigError(f"checkpoint {path} is missing {TRAINER_STATE}; was the run killed before the first save?")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, bad pickle, wrong file: all reported as one line
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"checkpoint {path}: {TRAINER_STATE} is corrupt or unreadable ({reason})") from None
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        raise ConfigError(f"checkpoint {path}: {TRAINER_STATE} is not a dlm trainer state")
    return state


def _step_dirs(root: Path) -> list[Path]:
    """Complete checkpoint directories, oldest first."""
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
