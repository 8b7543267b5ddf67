"""Reasoning tasks (Sudoku, Countdown, multiplication; GSM8K as real text): formatter, checker, generator, eval files.

    from dlm.tasks import get_task
    task = get_task("sudoku4x4")
    task.check("3102200002100320", "3142243142131324")   # True: rows, columns, boxes and givens hold
    pairs = task.generate(1000, seed=0)                  # [(question, answer)], a pure function of (n, seed)
"""

from dlm.tasks import countdown, gsm8k, multiplication, sudoku  # noqa: F401  (register the tasks)
from dlm.tasks.base import TASKS, Example, Task, get_task
from dlm.tasks.source import task_source

__all__ = ["TASKS", "Example", "Task", "get_task", "task_source"]
