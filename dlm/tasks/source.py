"""Task rows as a registered data source, so `dlm/train` trains on them unchanged.

``task:<name>`` and ``task:<name>:<rows>`` are read by the one source registered under the prefix ``task`` in
SOURCES (dlm.data.sources.load_documents hands it the whole spec; nothing is registered at call time): split
'train' is `rows` generated rows (default task.train_size; seed 0, the questions of the shipped evaluation files
left out), 'valid' 512 generated rows (seed 1). Each document is one formatted row of exactly task.row_len
characters, so data.mode=pad with data.add_bos_eos=false and data.seq_len=task.row_len gives one puzzle per row
with no padding. Rows are generated when read (the training loop reads each split once), not kept process-wide.
"""

from __future__ import annotations

from dlm.config import DataConfig
from dlm.registry import SOURCES, ConfigError
from dlm.tasks.base import get_task

VALID_ROWS = 512
PREFIX = "task"


def task_rows(name: str, rows: int, seed: int) -> list[str]:
    """The formatted rows of task.generate(rows, seed=seed), shipped questions excluded."""
    task = get_task(name)
    pairs = task.generate(rows, seed=seed, exclude=task.shipped_questions())
    return [task.format(q, a) for q, a in pairs]


def parse_task_source(spec: str) -> tuple[str, int]:
    """'task:<name>[:<rows>]' -> (name, rows), rows defaulting to the task's train_size. One-line ConfigError."""
    prefix, _, rest = spec.partition(":")
    name, _, rows = rest.partition(":")
    if prefix != PREFIX or not name or (rows and not rows.isdigit()) or rows == "0":
        raise ConfigError(f"task source '{spec}' must look like task:<name> or task:<name>:<rows> (rows > 0)")
    return name, int(rows) if rows else get_task(name).train_size


class TaskSources:
    """SOURCES["task"]: the documents of any task:<name>[:<rows>] spec (dlm.data.sources.load_documents)."""

    def documents(self, spec: str, split: str) -> list[str]:
        name, rows = parse_task_source(spec)
        return task_rows(name, rows, 0) if split == "train" else task_rows(name, VALID_ROWS, 1)

    def __call__(self, split: str, cfg: DataConfig) -> list[str]:
        raise ConfigError("the task source needs a task: data.source=task:<name>[:<rows>]")


def task_source(name: str, rows: int = 0) -> str:
    """The data.source spec of task `name`'s rows; rows=0 takes task.train_size."""
    task = get_task(name)
    rows = rows or task.train_size
    return f"{PREFIX}:{name}" if rows == task.train_size else f"{PREFIX}:{name}:{rows}"


SOURCES.register(PREFIX)(TaskSources())
