"""Countdown-N: combine N numbers with + - * / into a target. Countdown-4 is the cd4 set of Gandhi et al., arXiv
2404.03683, as used by MGDM, arXiv 2410.14157; Countdown-3 (three numbers, as in d1's Countdown, arXiv 2504.12216)
ships no file here: it is generated (`dlm task eval countdown3 --split generated`).

Question "n1,...,nN,target"; answer a chain of N - 1 steps "a op b=c,d op e=f,...,g op h=target". Rules: each step's
arithmetic is exact over the integers (division without remainder, no negative results), every operand is taken from
the pool of unused numbers (the N givens, then the results of earlier steps), each exactly once, and the last
result is the target, with nothing left in the pool.
Generator: N numbers uniform in [1, 99], N - 1 random steps on random pairs, kept when the target lies in
[10, 100] (the range of the shipped cd4 sets).
Row: Countdown-4: question padded to 15 chars + ':' | answer padded to 40 chars; Countdown-3: 12 + ':' | 28.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from dlm.tasks.base import PAD, TASKS, Example, Task

_STEP = re.compile(r"^(\d+)([+\-*/])(\d+)=(\d+)$")
_OPS = "+-*/"


def apply(a: int, op: str, b: int) -> int | None:
    """a op b over the naturals, or None where the result is not a natural number (negative or fractional)."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b if a >= b else None
    if op == "*":
        return a * b
    return a // b if b != 0 and a % b == 0 else None


class Countdown(Task):
    """Subclasses set `numbers` (N), name, widths and eval files."""

    numbers: int
    alphabet = "0123456789,+-*/=:" + PAD
    targets = (10, 100)

    def prompt_text(self, question: str) -> str:
        return question + ":"

    def question_from(self, text: str) -> str:
        return text.removesuffix(":")

    def check(self, question: str, answer: str) -> bool:
        try:
            *given, target = (int(v) for v in question.split(","))
        except ValueError:
            return False
        if len(given) != self.numbers:
            return False
        pool, result = list(given), None
        for step in answer.split(","):
            match = _STEP.match(step.strip())
            if match is None:
                return False
            a, op, b, c = int(match[1]), match[2], int(match[3]), int(match[4])
            for operand in (a, b):
                if operand not in pool:
                    return False
                pool.remove(operand)
            result = apply(a, op, b)
            if result is None or result != c:
                return False
            pool.append(result)
        return result == target and pool == [target]

    def sample(self, rng: random.Random) -> Example:
        while True:
            numbers = [rng.randint(1, 99) for _ in range(self.numbers)]
            pool, steps = list(numbers), []
            while len(pool) > 1:
                i, j = rng.sample(range(len(pool)), 2)
                a, b, op = pool[i], pool[j], rng.choice(_OPS)
                if op in "-/" and a < b:
                    a, b = b, a
                c = apply(a, op, b)
                if c is None:
                    break
                pool = [v for k, v in enumerate(pool) if k not in (i, j)] + [c]
                steps.append(f"{a}{op}{b}={c}")
            if len(pool) == 1 and self.targets[0] <= pool[0] <= self.targets[1]:
                answer = ",".join(steps)
                if len(answer) <= self.answer_len:
                    question = ",".join(map(str, [*numbers, pool[0]]))
                    return Example(question, answer, difficulty(answer))

    def read(self, path: Path) -> list[Example]:
        with open(path) as handle:
            items = [json.loads(line) for line in handle if line.strip()]
        return [Example(item["input"], item["output"], difficulty(item["output"])) for item in items]


@TASKS.register("countdown4")
class Countdown4(Countdown):
    name, numbers = "countdown4", 4
    prompt_len, answer_len = 16, 40
    eval_files = {"test": "countdown/cd4_eval.jsonl", "train": "countdown/cd4_train.jsonl"}


@TASKS.register("countdown3")
class Countdown3(Countdown):
    name, numbers = "countdown3", 3
    prompt_len, answer_len = 13, 28


def difficulty(answer: str) -> str:
    """The operators the solution uses, e.g. '+-' or '*/': multiplication and division make a puzzle harder."""
    return "".join(op for op in _OPS if op in answer)
