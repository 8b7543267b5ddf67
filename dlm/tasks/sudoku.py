"""Sudoku (n^2 x n^2 grids, n = 2 or 3): puzzles and solutions as row-major digit strings, '0' = blank.

Rules: every row, column and n x n box holds each digit 1..n^2 once, and the solution keeps every given.
Generator: a uniformly shuffled randomized-backtracking fill gives a complete grid; `blanks` random cells are
then erased (9x9 default 45-50 blanks, the range of the MGDM Sudoku set, arXiv 2410.14157). Puzzles need not
have a unique solution: the checker accepts any grid that obeys the rules and the givens.
Row: puzzle (n^4 chars) + '=' | solution (n^4 chars).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from dlm.tasks.base import PAD, TASKS, Example, Task


def units(box: int) -> list[list[int]]:
    """The 3 * side index lists (rows, columns, boxes) of a side x side grid, side = box^2."""
    side = box * box
    rows = [[r * side + c for c in range(side)] for r in range(side)]
    cols = [[r * side + c for r in range(side)] for c in range(side)]
    boxes = [[(br * box + r) * side + bc * box + c for r in range(box) for c in range(box)]
             for br in range(box) for bc in range(box)]
    return rows + cols + boxes


def _peers(box: int) -> list[set[int]]:
    side = box * box
    peers: list[set[int]] = [set() for _ in range(side * side)]
    for unit in units(box):
        for cell in unit:
            peers[cell].update(unit)
    for cell, group in enumerate(peers):
        group.discard(cell)
    return peers


def solve(grid: list[int], box: int, *, limit: int = 1, rng: random.Random | None = None) -> list[list[int]]:
    """Up to `limit` completions of `grid` (0 = blank) by backtracking on the most constrained cell.

    With `rng`, candidate digits are tried in random order (used to draw random complete grids).
    """
    side, peers = box * box, _peers(box)
    grid, found = list(grid), []

    def search() -> bool:
        best, best_options = -1, None
        for cell, value in enumerate(grid):
            if value == 0:
                options = set(range(1, side + 1)) - {grid[p] for p in peers[cell]}
                if best_options is None or len(options) < len(best_options):
                    best, best_options = cell, options
                    if len(options) <= 1:
                        break
        if best < 0:
            found.append(list(grid))
            return len(found) >= limit
        options = sorted(best_options)
        if rng is not None:
            rng.shuffle(options)
        for digit in options:
            grid[best] = digit
            if search():
                return True
        grid[best] = 0
        return False

    search()
    return found


class Sudoku(Task):
    box: int
    blanks: tuple[int, int]  # generator: blank count drawn uniformly from [lo, hi]

    def __init__(self, blanks: tuple[int, int] | None = None):
        side = self.box * self.box
        self.cells = side * side
        self.alphabet = "".join(str(d) for d in range(side + 1)) + "=" + PAD
        self.prompt_len, self.answer_len = self.cells + 1, self.cells
        if blanks is not None:
            self.blanks = blanks
        self._units = units(self.box)

    def prompt_text(self, question: str) -> str:
        return question + "="

    def question_from(self, text: str) -> str:
        return text.removesuffix("=")

    def check(self, question: str, answer: str) -> bool:
        side = self.box * self.box
        digits = {str(d) for d in range(1, side + 1)}
        if len(question) != self.cells or len(answer) != self.cells or not set(answer) <= digits:
            return False
        if any(q != "0" and q != a for q, a in zip(question, answer)):
            return False
        return all({answer[i] for i in unit} == digits for unit in self._units)

    def partial_credit(self, question: str, answer: str, reference: str) -> float:
        """d1's Sudoku reward (arXiv 2504.12216, its reward function): the answer's digits (other symbols dropped),
        padded with '0' or cut to the grid's cells, are compared with the reference solution at the puzzle's blank
        cells; the reward is the fraction of blanks filled correctly. An answer the checker accepts scores 1 (a
        puzzle with several solutions: d1's puzzles have one, where the two rules agree)."""
        if self.check(question, answer):
            return 1.0
        digits = "".join(c for c in answer if c.isdigit()).ljust(self.cells, "0")[: self.cells]
        blanks = [i for i, c in enumerate(question) if c == "0"]
        return sum(digits[i] == reference[i] for i in blanks) / len(blanks) if blanks else 0.0

    def sample(self, rng: random.Random) -> Example:
        solution = solve([0] * self.cells, self.box, rng=rng)[0]
        blanks = rng.randint(*self.blanks)
        puzzle = list(solution)
        for cell in rng.sample(range(self.cells), blanks):
            puzzle[cell] = 0
        return Example("".join(map(str, puzzle)), "".join(map(str, solution)), difficulty(blanks))

    def read(self, path: Path) -> list[Example]:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        return [Example(q, a, difficulty(q.count("0"))) for q, a in rows[1:]]


def difficulty(blanks: int) -> str:
    return f"{blanks} blanks"


@TASKS.register("sudoku9x9")
class Sudoku9x9(Sudoku):
    name, box, blanks = "sudoku9x9", 3, (45, 50)
    train_size = 20_000


@TASKS.register("sudoku4x4")
class Sudoku4x4(Sudoku):
    name, box, blanks = "sudoku4x4", 2, (6, 10)
    eval_files = {"test": "sudoku/sudoku4x4_500.csv"}
