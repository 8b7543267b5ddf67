"""Rewards from a task's rule checker and group-relative advantages (docs/posttraining.md#rewards-and-advantages).

Reward of completion i: r_i = 1[task.check(question_i, answer_i)] + format_weight * 1[answer_i is well formed]
(well formed: non-empty and made of the task's symbols only, no special or mask token).
Advantage (d1, arXiv 2504.12216 §3.2, as its code computes it): A_i = r_i - mean of r over the G completions of the
same prompt, without dividing by the group's standard deviation; a group whose rewards tie has A = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dlm.tasks.base import Task
from dlm.tasks.evaluate import UNKNOWN


def task_rewards(task: Task, questions: Sequence[str], answers: Sequence[str], *,
                 format_weight: float = 0.0) -> tuple[Tensor, Tensor]:
    """(rewards (n,) float32, correct (n,) bool) of n answers to n questions."""
    correct = torch.tensor([task.check(q, a) for q, a in zip(questions, answers)], dtype=torch.bool)
    well_formed = torch.tensor([bool(a) and UNKNOWN not in a for a in answers], dtype=torch.float32)
    return correct.float() + format_weight * well_formed, correct


def group_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """(n,) rewards of consecutive groups of group_size -> (n,) A_i = r_i - mean of its group."""
    groups = rewards.view(-1, group_size)
    return (groups - groups.mean(dim=1, keepdim=True)).reshape(-1)
