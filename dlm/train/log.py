"""Training metrics: one JSON object per line in out_dir/metrics.jsonl, optional TensorBoard, a progress bar (a tqdm
bar on a terminal; in a log, one plain line every log_every steps: dlm/utils/progress.py).

Only rank 0 writes. A record holds the step and whatever was measured at it: loss, lr, grad_norm, tokens_per_s,
elapsed_s on logging steps; val_nll (per-token bound, nats) and val_ppl (its exp) on evaluation steps.
On resume, records after the checkpoint's step are dropped first, so the file continues as if never interrupted.
"""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from dlm.registry import ConfigError
from dlm.utils.progress import progress as _progress  # `progress` is the bool flag below

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl file; a torn last line (a kill mid-write) is left out."""
    return [record for _, record in _records(Path(path))]


def _records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) pairs. Only the last line may be torn (every write is one flushed line): it is dropped with
    a warning; a bad line elsewhere means the file is not a metrics log (one-line ConfigError)."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    out = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("no step")
        except ValueError:
            if number < len(lines):
                raise ConfigError(f"{path} line {number} is not a metrics record; move the file away to resume "
                                  "(the checkpoints do not depend on it)") from None
            warnings.warn(f"{path}: dropping a torn last line (a write cut off by a kill): {line[:60]!r}",
                          stacklevel=3)
            continue
        out.append((line, record))
    return out


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep only the records with step <= last_step (resume after an interruption)."""
    if not path.is_file():
        return
    kept = [line for line, record in _records(path) if record["step"] <= last_step]
    path.write_text("".join(line + "\n" for line in kept))


class Throughput:
    """Tokens per second of training steps (evaluation and checkpoint time excluded)."""

    def __init__(self, tokens_per_step: int):
        self.tokens_per_step = tokens_per_step
        self.window_steps = self.total_steps = 0
        self.window_seconds = self.total_seconds = self.last_seconds = 0.0

    def add(self, seconds: float) -> None:
        """Record one step that took `seconds`."""
        self.window_steps, self.total_steps = self.window_steps + 1, self.total_steps + 1
        self.window_seconds, self.total_seconds = self.window_seconds + seconds, self.total_seconds + seconds
        self.last_seconds = seconds

    def window_rate(self) -> float:
        """Rate since the previous call (the logging interval), then start a new window."""
        rate = self.window_steps * self.tokens_per_step / max(self.window_seconds, 1e-9)
        self.window_steps, self.window_seconds = 0, 0.0
        return rate

    def last_rate(self) -> float:
        return self.tokens_per_step / max(self.last_seconds, 1e-9)

    def total_rate(self) -> float:
        return self.total_steps * self.tokens_per_step / max(self.total_seconds, 1e-9)


class MetricsLogger:
    """JSONL + TensorBoard + progress bar for steps start_step+1 .. total_steps. A no-op on ranks other than 0."""

    def __init__(self, out_dir: Path, *, start_step: int, total_steps: int, is_main: bool, progress: bool,
                 tensorboard: bool, log_every: int = 1):
        self.is_main = is_main
        self.file = None
        self.writer = None
        self.bar = None
        if not is_main:
            return
        path = out_dir / METRICS_FILE
        if start_step > 0:
            truncate_metrics(path, start_step)
        else:
            path.unlink(missing_ok=True)
        self.file = open(path, "a")
        if tensorboard:
            self.writer = _summary_writer(out_dir / "tensorboard")
        self.bar = _progress(total=total_steps, initial=start_step, disable=not progress, unit="step", desc="train",
                             every=log_every, dynamic_ncols=True)

    def log(self, step: int, **metrics: float) -> None:
        """Append one record (flushed immediately, so an interrupted run keeps what it logged)."""
        if not self.is_main or not metrics:
            return
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, step)

    def advance(self, **postfix: float) -> None:
        """Move the bar one step and show `postfix` (e.g. loss, tok/s); tqdm adds rate and ETA."""
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)

    def message(self, text: str) -> None:
        """A line on stdout from rank 0 that does not break the progress bar."""
        if self.is_main:
            tqdm.write(text)

    def close(self) -> None:
        for handle in (self.bar, self.writer, self.file):
            if handle is not None:
                handle.close()
        self.bar = self.writer = self.file = None


def _plain(value: Any) -> Any:
    value = float(value) if not isinstance(value, (int, str)) else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


def check_tensorboard() -> None:
    """One-line ConfigError when train.tensorboard=true cannot work."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("train.tensorboard=true needs the tensorboard package: pip install tensorboard")


def _summary_writer(path: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path))
