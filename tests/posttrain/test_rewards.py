"""RL rewards: d1's partial-credit Sudoku reward on hand-made puzzles, and the reward choice in task_rewards."""

import pytest

from dlm.registry import ConfigError
from dlm.tasks import get_task
from dlm.train.rl.rewards import task_rewards
from dlm.train.rl.run import GRPOConfig

# a 4x4 solution and a puzzle with four blanks (cells 0, 5, 10, 15: the diagonal), one solution only
SOLUTION = "1234341221434321"
PUZZLE = "0234301221034320"


def test_sudoku_partial_credit_is_the_fraction_of_blanks_filled_correctly():
    sudoku = get_task("sudoku4x4")
    assert sudoku.partial_credit(PUZZLE, SOLUTION, SOLUTION) == 1.0
    # blank 0 wrong (4 for 1), blank 5 wrong (1 for 4): 2 of 4 blanks right
    assert sudoku.partial_credit(PUZZLE, "4234311221434321", SOLUTION) == 0.5
    # a changed given (cell 1: 2 -> 1) is not a blank: d1's fraction ignores it
    assert sudoku.partial_credit(PUZZLE, "1134341221434321", SOLUTION) == 1.0
    # non-digit symbols are dropped and the digits shift left: "?" at cell 0, then the rest moves up by one
    shifted = "?234341221434321"  # digits 234341221434321 + '0' padding -> blanks 0,5,10,15 read 2,1,4,0
    assert sudoku.partial_credit(PUZZLE, shifted, SOLUTION) == 0.0
    # a short answer is padded with '0' (never right), a long one is cut to the 16 cells
    assert sudoku.partial_credit(PUZZLE, "12343", SOLUTION) == 0.25
    assert sudoku.partial_credit(PUZZLE, SOLUTION + "999", SOLUTION) == 1.0


def test_sudoku_partial_credit_gives_a_valid_other_solution_full_credit():
    sudoku = get_task("sudoku4x4")
    other = SOLUTION.translate(str.maketrans("12", "21"))  # digits 1 and 2 swapped: another valid grid
    puzzle = "".join("0" if a != b else a for a, b in zip(SOLUTION, other))
    assert sudoku.check(puzzle, other) and sudoku.check(puzzle, SOLUTION)
    assert sudoku.partial_credit(puzzle, other, SOLUTION) == 1.0
    blanks = puzzle.count("0")
    assert sudoku.partial_credit(puzzle, other[:1] + SOLUTION[1:], SOLUTION) == (blanks - 1) / blanks


def test_task_rewards_partial_and_checker_with_format_weight():
    sudoku = get_task("sudoku4x4")
    answers = [SOLUTION, "4234311221434321", ""]
    rewards, correct = task_rewards(sudoku, [PUZZLE] * 3, answers, references=[SOLUTION] * 3, reward="partial",
                                    format_weight=0.1)
    assert rewards.tolist() == pytest.approx([1.1, 0.6, 0.0])
    assert correct.tolist() == [True, False, False]
    rewards, _ = task_rewards(sudoku, [PUZZLE] * 3, answers)
    assert rewards.tolist() == [1.0, 0.0, 0.0]


def test_partial_reward_errors_in_one_line():
    with pytest.raises(ConfigError, match="no partial-credit reward"):
        task_rewards(get_task("countdown3"), ["1,2,3,6"], ["1+2=3,3+3=6"], references=["1+2=3,3+3=6"],
                     reward="partial")
    with pytest.raises(ConfigError, match="one reference answer per completion"):
        task_rewards(get_task("sudoku4x4"), [PUZZLE], [SOLUTION], reward="partial")
    with pytest.raises(ConfigError, match="not one of checker, partial"):
        GRPOConfig(reward="shaped").check()
