"""Task rows as a registered data source, so `dlm/train` trains on them unchanged.

``task:<name>`` (and ``task:<name>:<rows>``) in SOURCES: split 'train' is `rows` generated rows (seed 0, the
questions of the shipped evaluation files left out), 'valid' 512 generated rows (seed 1). Each document is one
formatted row of exactly task.row_len characters, so data.mode=pad with data.add_bos_eos=false and
data.seq_len=task.row_len gives one puzzle per row with no padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from dlm.config import DataConfig
from dlm.registry import SOURCES
from dlm.tasks.base import TASKS, get_task

VALID_ROWS = 512
PREFIX = "task:"


@lru_cache(maxsize=8)
def task_rows(name: str, rows: int, seed: int) -> tuple[str, ...]:
    """The formatted rows of task.generate(rows, seed=seed), shipped questions excluded (cached: the training
    loop reads the source once for the tokenizer and once for the splits)."""
    task = get_task(name)
    pairs = task.generate(rows, seed=seed, exclude=task.shipped_questions())
    return tuple(task.format(q, a) for q, a in pairs)


@dataclass(frozen=True)
class TaskSource:
    task: str
    rows: int

    def __call__(self, split: str, cfg: DataConfig) -> list[str]:
        if split == "train":
            return list(task_rows(self.task, self.rows, 0))
        return list(task_rows(self.task, VALID_ROWS, 1))


def task_source(name: str, rows: int = 0) -> str:
    """The SOURCES name of task `name`'s rows (registered on first use); rows=0 takes task.train_size."""
    task = get_task(name)
    rows = rows or task.train_size
    source = f"{PREFIX}{name}" if rows == task.train_size else f"{PREFIX}{name}:{rows}"
    if source not in SOURCES:
        SOURCES.register(source)(TaskSource(name, rows))
    return source


for _name in TASKS:
    task_source(_name)
