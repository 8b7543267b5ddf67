"""n x n digit multiplication in the ICoT format (Deng et al., arXiv 2311.01460; MGDM, arXiv 2410.14157).

A line of the shipped files is ``a * b||<chain of thought> #### <product>``; every number is written least
significant digit first with its digits separated by spaces, e.g. ``1 3 4 5 * 8 1 9 3||... #### 8 5 6 8 7 2 1 2``
is 5431 x 3918 = 21278658. The chain of thought lists the partial products p_k = a * b_k * 10^k (n + 1 + k digits)
and, between them, the running sums (p_0 + ... + p_k, n + 1 + k digits) in parentheses; the product has 2n digits.
Question: the text before ``||``. Answer: the text after it (chain + product) for the *_cot tasks, the product
digits alone otherwise; the checker reads the digits after the last ``####`` (or the whole answer) and accepts
them when they are 2n digits whose value is a * b.
Row: compact digits without spaces ('#' for '####'): "5632*7434|" + answer.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

from dlm.tasks.base import TASKS, Example, Task

_SEP = "||"
_MARK = "####"


def lsb_digits(value: int, width: int) -> list[int]:
    """value as `width` digits, least significant first (zero-padded). value < 10^width."""
    return [(value // 10**k) % 10 for k in range(width)]


def lsb_value(digits: list[str]) -> int:
    return sum(int(d) * 10**k for k, d in enumerate(digits))


def _spaced(digits: list[int]) -> str:
    return " ".join(map(str, digits))


def chain_of_thought(a: int, b: int, n: int) -> str:
    """The ICoT answer of a * b for n-digit operands: partial products, running sums, '#### ' product."""
    b_digits = lsb_digits(b, n)
    parts, total = [], 0
    for k, digit in enumerate(b_digits):
        partial = a * digit * 10**k
        total += partial
        parts.append(("+ " if k else "") + _spaced(lsb_digits(partial, n + 1 + k)))
        if 0 < k < n - 1:
            parts.append(f"( {_spaced(lsb_digits(total, n + 1 + k))} )")
    return " ".join(parts) + f" {_MARK} " + _spaced(lsb_digits(a * b, 2 * n))


class Multiplication(Task):
    """n x n multiplication, with the chain of thought in the answer when cot=True."""

    def __init__(self, name: str, digits: int, cot: bool):
        self.name, self.digits, self.cot = name, digits, cot
        n = digits
        self.alphabet = "0123456789*+()#|_"
        self.prompt_len = 2 * n + 2
        self.answer_len = len(self.answer_text(self._answer(0, 0)))
        folder = f"multiplication/{n}_by_{n}_mult"
        self.eval_files = {"test": f"{folder}/test_bigbench.txt", "valid": f"{folder}/valid.txt"}

    def _answer(self, a: int, b: int) -> str:
        full = chain_of_thought(a, b, self.digits)
        return full if self.cot else full.split(_MARK)[-1].strip()

    def operands(self, question: str) -> tuple[int, int] | None:
        sides = [side.split() for side in question.split("*")]
        if len(sides) != 2 or any(len(s) != self.digits or not all(d.isdigit() for d in s) for s in sides):
            return None
        return lsb_value(sides[0]), lsb_value(sides[1])

    def check(self, question: str, answer: str) -> bool:
        operands = self.operands(question)
        digits = answer.split(_MARK)[-1].split()
        if operands is None or len(digits) != 2 * self.digits or not all(len(d) == 1 and d.isdigit() for d in digits):
            return False
        return lsb_value(digits) == operands[0] * operands[1]

    def sample(self, rng: random.Random) -> Example:
        a, b = (rng.randrange(10 ** (self.digits - 1), 10**self.digits) for _ in range(2))
        question = f"{_spaced(lsb_digits(a, self.digits))} * {_spaced(lsb_digits(b, self.digits))}"
        return Example(question, self._answer(a, b))

    def prompt_text(self, question: str) -> str:
        return question.replace(" ", "") + "|"

    def question_from(self, text: str) -> str:
        return " ".join(text.removesuffix("|"))

    def answer_text(self, answer: str) -> str:
        return answer.replace(_MARK, "#").replace(" ", "")

    def answer_from(self, text: str) -> str:
        return " ".join(text).replace("#", _MARK)

    def read(self, path: Path) -> list[Example]:
        examples = []
        for line in path.read_text().splitlines():
            if _SEP in line:
                question, full = (part.strip() for part in line.split(_SEP, 1))
                examples.append(Example(question, full if self.cot else full.split(_MARK)[-1].strip()))
        return examples


for _n in (4, 5):
    for _cot in (False, True):
        _name = f"mult{_n}x{_n}" + ("_cot" if _cot else "")
        TASKS.register(_name)(functools.partial(Multiplication, _name, _n, _cot))
