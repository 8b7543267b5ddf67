"""Checkers accept every official solution of the shipped files and reject corrupted ones; generators are pure
functions of the seed and produce valid puzzles; formatters round-trip."""

import random

import pytest

from dlm.data.paths import data_dir
from dlm.registry import ConfigError
from dlm.tasks import TASKS, get_task
from dlm.tasks.base import PAD
from dlm.tasks.multiplication import chain_of_thought
from dlm.tasks.sudoku import solve

NAMES = ["sudoku9x9", "sudoku4x4", "countdown3", "countdown4", "mult4x4", "mult5x5", "mult4x4_cot", "mult5x5_cot"]
SHIPPED = [(name, split) for name in NAMES for split in get_task(name).eval_files]


def test_registry_holds_the_contract_names():
    assert set(NAMES) <= set(TASKS)
    with pytest.raises(ConfigError, match="unknown task"):
        get_task("sudoku16x16")


@pytest.mark.parametrize("name,split", SHIPPED)
def test_checker_accepts_every_official_solution(name, split):
    task = get_task(name)
    if not task.has_split(split):
        pytest.skip(f"{data_dir() / task.eval_files[split]} is absent")
    examples = task.load(split)  # every example of the file: 500 to 2000 each, all checked
    assert len(examples) >= 500
    rejected = [ex for ex in examples if not task.check(ex.question, ex.answer)]
    assert rejected == []
    assert all(task.parse(task.format(ex.question, ex.answer)) == (ex.question, ex.answer) for ex in examples)
    assert {len(task.format(ex.question, ex.answer)) for ex in examples} == {task.row_len}


@pytest.mark.parametrize("n", [4, 5])
def test_chain_of_thought_reproduces_the_icot_files(n):
    task = get_task(f"mult{n}x{n}_cot")
    if not task.has_split("test"):
        pytest.skip("ICoT files absent")
    for ex in task.load("test"):
        a, b = task.operands(ex.question)
        assert chain_of_thought(a, b, n) == ex.answer


def _swap_cells(question: str, answer: str) -> str:
    """Swap two differing blank cells of the same row: row sums unchanged, but a column or box breaks."""
    side = int(len(answer) ** 0.5)
    for r in range(side):
        cells = [r * side + c for c in range(side) if question[r * side + c] == "0"]
        for i in cells:
            for j in cells:
                if answer[i] != answer[j]:
                    out = list(answer)
                    out[i], out[j] = out[j], out[i]
                    return "".join(out)
    raise AssertionError("no two blanks in one row")


def test_sudoku_rejects_corruptions():
    task = get_task("sudoku4x4")
    q, a = "3102200002100320", "3142243142131324"
    assert task.check(q, a)
    assert not task.check(q, _swap_cells(q, a))  # a swapped cell
    assert not task.check(q, "4" + a[1:])  # a given overwritten
    assert not task.check(q, a[:-1])  # too short
    assert not task.check(q, a[:-1] + "?")
    q9, a9 = get_task("sudoku9x9").generate(1, seed=3)[0]
    assert get_task("sudoku9x9").check(q9, a9)
    assert not get_task("sudoku9x9").check(q9, _swap_cells(q9, a9))


def test_countdown_rejects_corruptions():
    task = get_task("countdown4")
    q, a = "86,28,13,31,96", "86+28=114,31-13=18,114-18=96"
    assert task.check(q, a)
    assert not task.check(q, "86+28=115,31-13=18,115-18=97")  # wrong arithmetic, consistently carried on
    assert not task.check(q, "86+28=114,31-13=18,114-18=95")  # wrong last step
    assert not task.check(q, "86+28=114,86-13=73,114-18=96")  # 86 reused
    assert not task.check(q, "86+28=114,114-18=96")  # 31 and 13 never used (and 18 not in the pool)
    assert not task.check(q, "86+28=114,31-13=18")  # stops before the target
    assert not task.check(q, "13-31=-18,86+28=114,114+-18=96")  # negative intermediate
    assert not task.check("8,4,3,2,1", "8/3=2,4-2=2,2-2=0")  # inexact division
    assert task.check("8,4,3,2,2", "8/4=2,3-2=1,2*1=2")


def test_countdown3_rejects_corruptions():
    task = get_task("countdown3")
    q, a = "86,28,13,127", "86+28=114,114+13=127"
    assert task.check(q, a)
    assert not task.check(q, "86+28=114,114+13=128")  # wrong last step
    assert not task.check(q, "86+28=114")  # 13 never used
    assert not task.check(q, "86+28=114,114+28=142")  # 28 reused
    assert not task.check("86,28,13,1,127", a)  # four numbers: not a Countdown-3 question
    assert not get_task("countdown4").check(q, a)  # three numbers: not a Countdown-4 question


def test_multiplication_rejects_corruptions():
    task = get_task("mult4x4")
    q = "5 6 3 2 * 7 4 3 4"  # 2365 * 4347 = 10280655
    assert task.check(q, "5 5 6 0 8 2 0 1")
    assert task.check(q, "5 5 5 6 1 + 0 0 6 4 9 0 #### 5 5 6 0 8 2 0 1")  # the CoT answer: the product is read
    assert not task.check(q, "5 5 6 0 8 2 1 0")  # two digits swapped
    assert not task.check(q, "1 0 2 8 0 6 5 5")  # most significant digit first
    assert not task.check(q, "5 5 6 0 8 2 0")  # a digit short
    assert not task.check("5 6 3 * 7 4 3 4", "5 5 6 0 8 2 0 1")  # a 3-digit operand


@pytest.mark.parametrize("name", NAMES)
def test_generator_is_seeded_valid_and_round_trips(name):
    task = get_task(name)
    n = 5 if name == "sudoku9x9" else 50
    pairs = task.generate(n, seed=7)
    assert pairs == task.generate(n, seed=7)
    assert pairs != task.generate(n, seed=8)
    assert all(task.check(q, a) for q, a in pairs)
    for q, a in pairs:
        row = task.format(q, a)
        assert len(row) == task.row_len and set(row) <= set(task.alphabet)
        assert task.parse(row) == (q, a)
    exclude = {pairs[0][0]}
    assert pairs[0][0] not in {q for q, _ in task.generate(n, seed=7, exclude=exclude)}


def test_sudoku_generator_blank_count_and_solvability():
    task = TASKS["sudoku9x9"](blanks=(45, 50))
    for question, _ in task.generate(4, seed=0):
        assert 45 <= question.count("0") <= 50
        grid = [int(c) for c in question]
        found = solve(grid, 3, limit=1)  # the independent solver finds a completion that the checker accepts
        assert found and task.check(question, "".join(map(str, found[0])))
    assert {q.count("0") for q, _ in TASKS["sudoku4x4"](blanks=(8, 8)).generate(20, seed=0)} == {8}


def test_solver_counts_solutions():
    empty4 = [0] * 16
    assert len(solve(empty4, 2, limit=1000)) == 288  # the number of 4x4 Sudoku grids
    full = solve(empty4, 2, rng=random.Random(0))[0]
    assert solve(full, 2, limit=2) == [full]


def test_tokenizer_is_the_fixed_alphabet():
    task = get_task("sudoku4x4")
    vocab = task.tokenizer.get_vocab()
    assert set(task.alphabet) <= set(vocab) and len(vocab) == len(task.alphabet) + 4
    row = task.format("3102200002100320", "3142243142131324")
    ids = task.tokenizer(row, add_special_tokens=False)["input_ids"]
    assert len(ids) == task.row_len and task.tokenizer.decode(ids) == row
    assert PAD in task.alphabet
