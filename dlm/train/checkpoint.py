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
of one. The newest KEEP *healthy* checkpoints are kept (complete files, readable weights: `is_healthy`), so a
broken one never pushes a good one out; temporary directories left by a killed write are removed at the next start
(`clean_interrupted_writes`). Resuming reads `latest`; when it is missing or unreadable, the newest healthy step
directory is used instead (with a warning), and when a checkpoint's trainer state is missing or does not load, the
next older one is tried (with a warning naming why: `resume_state`), so no error ever has to advise starting over in
a run's directory.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from dlm.registry import ConfigError

TRAINER_STATE = "trainer_state.pt"
WEIGHTS = "model.safetensors"
MODEL_DIR = "model"
LATEST = "latest"
FINAL_DIR = "final"  # the exported model of a finished run, beside checkpoints/
KEEP = 3
_STEP_DIR = re.compile(r"^step_(\d+)$")
_INTERRUPTED = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-\d+$")
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
    prune(root, keep)
    return path


def prune(root: Path, keep: int = KEEP) -> None:
    """Delete the step directories older than the newest `keep` healthy ones (broken ones never count)."""
    steps = _step_dirs(root)
    healthy = [p for p in steps if is_healthy(p)]
    if len(healthy) <= keep:
        return
    oldest_kept = healthy[-keep]
    for old in steps[:steps.index(oldest_kept)]:
        shutil.rmtree(old, ignore_errors=True)


def is_healthy(path: Path) -> bool:
    """Cheap structural check of a step directory: a complete trainer state archive and a readable model dir."""
    return zipfile.is_zipfile(path / TRAINER_STATE) and model_dir_readable(path / MODEL_DIR)


def model_dir_readable(path: Path) -> bool:
    """config.json present and the safetensors header of model.safetensors readable (no tensor is loaded)."""
    if not (path / "config.json").is_file():
        return False
    try:
        with safe_open(str(path / WEIGHTS), framework="pt") as handle:
            handle.keys()
    except Exception:  # missing, truncated or not safetensors
        return False
    return True


def check_model_dir(path: Path) -> None:
    """One-line ConfigError unless every tensor of path/model.safetensors loads and is finite."""
    if not (path / "config.json").is_file():
        raise ConfigError(f"checkpoint model {path} has no config.json; resume from an earlier checkpoint")
    try:
        with safe_open(str(path / WEIGHTS), framework="pt") as handle:
            bad = next((key for key in handle.keys() if not bool(torch.isfinite(handle.get_tensor(key)).all())), None)
    except Exception as err:  # missing, truncated or not safetensors
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"checkpoint model {path}: {WEIGHTS} is unreadable ({reason}); nothing was "
                          "exported") from None
    if bad is not None:
        raise ConfigError(f"checkpoint model {path}: weight {bad} is not finite; nothing was exported")


def has_checkpoints(root: Path) -> bool:
    """Whether root holds a run's checkpoints: a `latest` pointer (even a broken one) or a healthy step directory."""
    return (root / LATEST).exists() or newest_checkpoint(root) is not None


def newest_checkpoint(root: Path) -> Path | None:
    """The newest healthy step directory, or None."""
    healthy = [p for p in _step_dirs(root) if is_healthy(p)] if root.is_dir() else []
    return healthy[-1] if healthy else None


def latest_checkpoint(root: Path) -> Path:
    """The directory `latest` names; when `latest` is missing or unreadable, the newest healthy step directory
    (with a warning). One-line ConfigError when there is no checkpoint at all."""
    pointer = root / LATEST
    named = _read_pointer(pointer)
    if named is not None and (root / named).is_dir():
        return root / named
    fallback = newest_checkpoint(root)
    if fallback is None:
        raise ConfigError(f"cannot resume: {root} holds no complete checkpoint; was the run killed before the first "
                          "save? Train into a new train.out_dir (the old one keeps what it has)")
    problem = "is missing" if not pointer.is_file() else f"names {named!r}, which does not exist" if named else \
        "is unreadable"
    warnings.warn(f"{pointer} {problem}; resuming from the newest complete checkpoint, {fallback.name}", stacklevel=2)
    return fallback


def resume_state(root: Path) -> tuple[Path, dict[str, Any]]:
    """(checkpoint dir, trainer state) to resume from: latest_checkpoint(root), else, when its trainer state is
    missing or corrupt, the newest older step directory whose state loads (a warning names each one skipped).
    One-line ConfigError when none loads."""
    first = latest_checkpoint(root)
    problems: list[str] = []
    for path in [first, *(p for p in reversed(_step_dirs(root)) if _step(p) < _step(first))]:
        try:
            state = load_trainer_state(path)
        except ConfigError as err:
            problems.append(str(err))
            continue
        for problem in problems:
            warnings.warn(f"{problem}; resuming from the newest earlier checkpoint, {path.name}", stacklevel=2)
        return path, state
    raise ConfigError(f"cannot resume: no checkpoint in {root} has a loadable {TRAINER_STATE} (newest: {problems[0]}); "
                      "train into a new train.out_dir (the old one keeps what it has)")


def _step(path: Path) -> int:
    match = _STEP_DIR.match(path.name)
    return int(match.group(1)) if match else -1


def _read_pointer(pointer: Path) -> str | None:
    """The step directory name in `latest`, or None when the file is missing or is not such a name."""
    try:
        name = pointer.read_bytes().decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name if _STEP_DIR.match(name) else None


def is_interrupted_write(name: str) -> bool:
    """Whether `name` is the temporary of a write killed mid-way (`.NAME.tmp-PID` / `.NAME.old-PID`)."""
    return _INTERRUPTED.match(name) is not None


def clean_interrupted_writes(*folders: Path) -> None:
    """Remove the temporary files and directories of writes killed mid-way (`.NAME.tmp-PID`). A `.NAME.old-PID`
    left between the two renames of a re-save is the only copy when NAME is gone: it is moved back."""
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _INTERRUPTED.match(path.name)
            if match is None:
                continue
            target = folder / match["name"]
            if match["kind"] == "old" and not target.exists():
                os.replace(path, target)
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def load_trainer_state(path: Path) -> dict[str, Any]:
    """Read path/trainer_state.pt (on the CPU). One-line ConfigError when missing, unreadable or foreign."""
    file = path / TRAINER_STATE
    if not file.is_file():
        raise ConfigError(f"checkpoint {path} is missing {TRAINER_STATE}")
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
