"""The Task interface: a reasoning puzzle as a fixed-length token row, a rule checker and a seeded generator.

A task's row is the prompt (the question, padded to a fixed width) followed by the answer (padded to a fixed
width): ``row = format_prompt(question) + format_answer(answer)``, one character per token over the task's small
fixed `alphabet`. Every row of a task has the same length, so the prompt occupies positions [0, prompt_len) and the
answer [prompt_len, row_len). A diffusion model fills the answer with the prompt clamped (``generate(prompt=,
prompt_mask=)``); the autoregressive baseline decodes it left to right after the same prompt.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dlm.data.paths import DATA_DIR_ENV, data_dir
from dlm.registry import ConfigError, Registry

TASKS = Registry("task")
PAD = "_"  # fills a prompt or an answer up to its fixed width


@dataclass(frozen=True)
class Example:
    """One puzzle in the strings of the shipped file format; difficulty is a label for per-bucket accuracy."""

    question: str
    answer: str
    difficulty: str = "all"


class Task(ABC):
    """Subclasses set name, alphabet, prompt_len, answer_len, eval_files and implement the four methods below.

    eval_files: split -> path under the data dir ($DLM_DATA_DIR, default ../shared/data).
    train_size: rows the registered training source generates by default.
    """

    name: str
    alphabet: str  # every token symbol of a row, PAD included
    prompt_len: int
    answer_len: int
    eval_files: dict[str, str] = {}
    train_size: int = 50_000

    @property
    def row_len(self) -> int:
        return self.prompt_len + self.answer_len

    # ---- the rules ---------------------------------------------------------------------------------------------
    @abstractmethod
    def check(self, question: str, answer: str) -> bool:
        """True when `answer` solves `question` by the rules of the puzzle (not by comparison with a reference)."""

    def partial_credit(self, question: str, answer: str, reference: str) -> float:
        """A reward in [0, 1] for an answer that is partly right (reinforcement learning's shaped reward,
        docs/posttraining.md#rewards-and-advantages); `reference` is the generator's answer to `question`.
        Tasks without one raise a one-line ConfigError."""
        raise ConfigError(f"task '{self.name}' has no partial-credit reward; use reward=checker")

    @abstractmethod
    def sample(self, rng: random.Random) -> Example:
        """One random puzzle with a valid answer, drawn from `rng` only."""

    @abstractmethod
    def read(self, path: Path) -> list[Example]:
        """The examples of a shipped evaluation file."""

    # ---- rows ----------------------------------------------------------------------------------------------------
    def prompt_text(self, question: str) -> str:
        """The question as the compact prompt string (before padding); identity unless a task compacts it."""
        return question

    def answer_text(self, answer: str) -> str:
        return answer

    def question_from(self, text: str) -> str:
        """Inverse of prompt_text."""
        return text

    def answer_from(self, text: str) -> str:
        """Inverse of answer_text."""
        return text

    def format_prompt(self, question: str) -> str:
        return _fit(self.prompt_text(question), self.prompt_len, f"{self.name} question {question!r}")

    def format_answer(self, answer: str) -> str:
        return _fit(self.answer_text(answer), self.answer_len, f"{self.name} answer {answer!r}")

    def format(self, question: str, answer: str) -> str:
        """The token row (row_len characters of the alphabet)."""
        return self.format_prompt(question) + self.format_answer(answer)

    def parse(self, row: str) -> tuple[str, str]:
        """Inverse of format: (question, answer). PAD characters anywhere are dropped (a model may misplace them)."""
        prompt, answer = row[: self.prompt_len], row[self.prompt_len :]
        return self.question_from(prompt.replace(PAD, "")), self.answer_from(answer.replace(PAD, ""))

    # ---- data ----------------------------------------------------------------------------------------------------
    def generate(self, n: int, *, seed: int, exclude: set[str] | None = None) -> list[tuple[str, str]]:
        """n (question, answer) pairs, a pure function of (n, seed); questions in `exclude` are skipped."""
        return [(ex.question, ex.answer) for ex in self.generate_examples(n, seed=seed, exclude=exclude)]

    def generate_examples(self, n: int, *, seed: int, exclude: set[str] | None = None) -> list[Example]:
        rng = random.Random(f"{self.name}:{seed}")
        out: list[Example] = []
        while len(out) < n:
            example = self.sample(rng)
            if not exclude or example.question not in exclude:
                out.append(example)
        return out

    def has_split(self, split: str) -> bool:
        return split in self.eval_files and (data_dir() / self.eval_files[split]).is_file()

    def load(self, split: str = "test") -> list[Example]:
        """The shipped evaluation file of `split`. Raises ConfigError when the task has none or it is missing."""
        if split not in self.eval_files:
            has = ", ".join(self.eval_files) or "none"
            raise ConfigError(f"task '{self.name}' ships no '{split}' file (has: {has}); use split=generated "
                              "for puzzles from task.generate")
        path = data_dir() / self.eval_files[split]
        if not path.is_file():
            raise ConfigError(f"task '{self.name}' needs {path}, which is missing; set {DATA_DIR_ENV} to the folder "
                              "that holds it, or use split=generated")
        return self.read(path)

    def shipped_questions(self) -> set[str]:
        """Questions of every shipped file that exists (kept out of generated training data)."""
        return {ex.question for split in self.eval_files if self.has_split(split) for ex in self.load(split)}

    @cached_property
    def tokenizer(self):
        """A char-level PreTrainedTokenizerFast over exactly `alphabet` (sorted), then <bos> <eos> <pad> <unk>:
        the tokenizer the 'char' spec builds from this task's rows (dlm/data/tokenizer.py)."""
        from dlm.data.tokenizer import build_tokenizer

        return build_tokenizer("char", [self.alphabet])


def _fit(text: str, width: int, what: str) -> str:
    if len(text) > width:
        raise ConfigError(f"{what} is {len(text)} tokens, longer than the task's width {width}")
    return text + PAD * (width - len(text))


def get_task(name: str) -> Task:
    """The registered task `name` (sudoku9x9, sudoku4x4, countdown3, countdown4, mult4x4, mult5x5, mult4x4_cot,
    mult5x5_cot)."""
    return TASKS.build(name)
