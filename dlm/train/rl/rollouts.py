"""Rollouts: G completions of each prompt sampled with the model's own sampler (docs/posttraining.md#rollouts).

The prompts of a task are clamped and the answer positions decoded as `dlm task eval` does
(dlm/tasks/evaluate.py), at a temperature > 0 so that the completions of a group differ (d1 samples at 0.9).
The completion is every answer position of the row (c_ik = 1 there, padding symbols included: a task row pads its
answer with PAD as an SFT row pads with EOS, and the policy is scored on where it stops).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.tasks.base import Task
from dlm.tasks.evaluate import decode_answers, encode_prompts


@dataclass(frozen=True)
class Rollouts:
    """ids (n, L): prompt + sampled completion; completion bool (n, L); questions, answers: n strings, the G
    completions of a prompt consecutive."""

    ids: Tensor
    completion: Tensor
    questions: list[str]
    answers: list[str]


@torch.no_grad()
def sample_rollouts(model, task: Task, questions: Sequence[str], *, group_size: int, sampler: str | None,
                    steps: int, temperature: float, generator: torch.Generator) -> Rollouts:
    """group_size completions of each question (steps=0: one reverse step per answer token,
    Sampler.token_steps)."""
    from dlm.sample import generate

    repeated = [q for q in questions for _ in range(group_size)]
    device = next(model.parameters()).device
    ids, prompt_mask = encode_prompts(task, model.tokenizer, repeated)
    chosen = model.objective.sampler(sampler, temperature=temperature)
    out = generate(model, model.process, chosen, steps=steps or chosen.token_steps(task.answer_len),
                   prompt=ids.to(device), prompt_mask=prompt_mask.to(device), generator=generator)
    return Rollouts(out, ~prompt_mask.to(device), repeated, decode_answers(task, model.tokenizer, out.cpu()))
