"""Solve a task's puzzles with a trained model and score the answers with the task's rule checker.

The answer positions of each row are generated with the prompt clamped: ``generate(model, model.process, sampler,
prompt=ids, prompt_mask=positions < prompt_len)``. For the autoregressive baseline the same call with the
"autoregressive" sampler decodes the answer left to right after the prompt, on the same backbone.
Accuracy comes with a 95% Wilson score interval (Wilson 1927), overall and per difficulty bucket.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch

from dlm.data.user_text import reject_unknown_characters
from dlm.registry import ConfigError
from dlm.tasks.base import Example, Task
from dlm.utils.progress import progress as progress_bar

UNKNOWN = "?"  # stands for a special or out-of-vocabulary token in a decoded answer, so the checker rejects it


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    # the bound is exactly 0 at correct == 0 (and 1 at correct == n); the float difference leaves ~1e-19 there
    low = 0.0 if correct == 0 else max(0.0, (centre - half) / denominator)
    return low, 1.0 if correct == n else min(1.0, (centre + half) / denominator)


def encode_prompts(task: Task, tokenizer, questions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, row_len), prompt_mask (B, row_len)): the prompt tokens, then zeros where the answer goes."""
    vocab = tokenizer.get_vocab()
    ids = torch.zeros(len(questions), task.row_len, dtype=torch.long)
    for row, question in enumerate(questions):
        prompt = task.format_prompt(question)
        missing = set(prompt) - set(vocab)
        if missing:  # the shared rule (dlm/data/user_text.py), without --allow-unk: the checkpoint is not this task's
            reject_unknown_characters(f"a question of task '{task.name}'", missing,
                                      hint="evaluate a checkpoint trained on this task with `dlm task train`")
        ids[row, : task.prompt_len] = torch.tensor([vocab[c] for c in prompt])
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[:, : task.prompt_len] = True
    return ids, mask


def decode_answers(task: Task, tokenizer, ids: torch.Tensor) -> list[str]:
    """The answer strings (file format) of generated rows (B, row_len); specials and masks become '?'."""
    alphabet = set(task.alphabet)
    answers = []
    for row in ids[:, task.prompt_len :].tolist():
        tokens = [tokenizer.convert_ids_to_tokens(i) if i < len(tokenizer) else None for i in row]
        text = "".join(t if t in alphabet else UNKNOWN for t in tokens)
        answers.append(task.parse("_" * task.prompt_len + text)[1])
    return answers


@torch.no_grad()
def solve(model, task: Task, questions: Sequence[str], *, sampler: str = "confidence", steps: int = 0,
          temperature: float = 0.0, generator: torch.Generator | None = None, denoiser=None) -> list[str]:
    """The model's answers to `questions` (one batch). steps=0: one step per answer token. sampler may carry
    options (confidence:threshold=0.9). denoiser: what generate calls instead of the model (an NFECounter)."""
    from dlm.sample import generate

    if model.tokenizer is None:
        raise ConfigError("the checkpoint has no tokenizer; train it with `dlm task train`")
    device = next(model.parameters()).device
    ids, mask = encode_prompts(task, model.tokenizer, questions)
    chosen = model.objective.sampler(sampler, temperature=temperature)  # the AR baseline: always left to right
    out = generate(denoiser or model, model.process, chosen, steps=steps or chosen.token_steps(task.answer_len),
                   prompt=ids.to(device), prompt_mask=mask.to(device), generator=generator)
    return decode_answers(task, model.tokenizer, out.cpu())


def evaluate(model, task: Task, examples: Sequence[Example], *, sampler: str = "confidence", steps: int = 0,
             temperature: float = 0.0, batch_size: int = 100, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Accuracy of the model's answers by task.check, with Wilson intervals overall and per difficulty.

    Returns {"n", "correct", "accuracy", "wilson95", "by_difficulty": {bucket: {...}}, "samples_per_s",
    "tokens_per_s" (answer tokens), "nfe" (denoiser calls, all batches), "nfe_per_batch", "elapsed_s", "sampler",
    "steps", "temperature", "examples": the first 5 (question, answer, correct)}.
    """
    from dlm.sample import NFECounter

    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(seed)
    steps = steps or model.objective.sampler(sampler, temperature=temperature).token_steps(task.answer_len)
    results: list[tuple[Example, str, bool]] = []
    counter, batches = NFECounter(model), -(-len(examples) // batch_size)
    start = time.perf_counter()
    for begin in progress_bar(range(0, len(examples), batch_size), desc=f"solving {task.name}", disable=not progress):
        batch = examples[begin : begin + batch_size]
        answers = solve(model, task, [ex.question for ex in batch], sampler=sampler, steps=steps,
                        temperature=temperature, generator=generator, denoiser=counter)
        results += [(ex, answer, task.check(ex.question, answer)) for ex, answer in zip(batch, answers)]
    elapsed = time.perf_counter() - start
    buckets: dict[str, list[bool]] = defaultdict(list)
    for ex, _, ok in results:
        buckets[ex.difficulty].append(ok)
    return {**_score([ok for *_, ok in results]),
            "by_difficulty": {key: _score(buckets[key]) for key in sorted(buckets)},
            "samples_per_s": len(results) / max(elapsed, 1e-9),
            "tokens_per_s": len(results) * task.answer_len / max(elapsed, 1e-9), "nfe": counter.calls,
            "nfe_per_batch": counter.calls / max(batches, 1), "elapsed_s": elapsed,
            "sampler": model.objective.sampler(sampler).name,
            "steps": steps, "temperature": temperature,
            "examples": [{"question": ex.question, "answer": answer, "correct": ok} for ex, answer, ok in results[:5]]}


def _score(oks: Sequence[bool]) -> dict[str, Any]:
    correct = sum(oks)
    return {"n": len(oks), "correct": correct, "accuracy": correct / max(len(oks), 1),
            "wilson95": list(wilson_interval(correct, len(oks)))}
