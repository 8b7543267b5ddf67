"""Rewards from a task's rule checker and group-relative advantages (docs/posttraining.md#rewards-and-advantages).

Reward of completion i, reward="checker": r_i = 1[task.check(question_i, answer_i)]; reward="partial": the task's
partial credit in [0, 1] against the generator's reference answer (Sudoku: d1's fraction of the blank cells filled
correctly, `Sudoku.partial_credit`). Either way + format_weight * 1[answer_i is well formed] (well formed: non-empty
and made of the task's symbols only, no special or mask token).
Advantage (d1, arXiv 2504.12216 §3.2, as its code computes it): A_i = r_i - mean of r over the G completions of the
same prompt, without dividing by the group's standard deviation; a group whose rewards tie has A = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dlm.registry import ConfigError
from dlm.tasks.base import Task
from dlm.tasks.evaluate import UNKNOWN

REWARDS = ("checker", "partial")


def task_rewards(task: Task, questions: Sequence[str], answers: Sequence[str], *, references: Sequence[str] = (),
                 reward: str = "checker", format_weight: float = 0.0) -> tuple[Tensor, Tensor]:
    """(rewards (n,) float32, correct (n,) bool) of n answers to n questions; references: the n reference answers
    (reward="partial" reads them)."""
    check_reward(reward)
    correct = torch.tensor([task.check(q, a) for q, a in zip(questions, answers)], dtype=torch.bool)
    well_formed = torch.tensor([bool(a) and UNKNOWN not in a for a in answers], dtype=torch.float32)
    if reward == "partial":
        if len(references) != len(answers):
            raise ConfigError("rl reward 'partial' needs one reference answer per completion")
        base = torch.tensor([task.partial_credit(q, a, ref) for q, a, ref in zip(questions, answers, references)],
                            dtype=torch.float32)
    else:
        base = correct.float()
    return base + format_weight * well_formed, correct


def check_reward(reward: str) -> None:
    """One-line ConfigError unless `reward` names a reward of REWARDS."""
    if reward not in REWARDS:
        raise ConfigError(f"rl reward '{reward}' is not one of {', '.join(REWARDS)}")


def group_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """(n,) rewards of consecutive groups of group_size -> (n,) A_i = r_i - mean of its group."""
    groups = rewards.view(-1, group_size)
    return (groups - groups.mean(dim=1, keepdim=True)).reshape(-1)
