"""GSM8K (Cobbe et al., arXiv 2110.14168) as a real-text example of the task pipeline: grade-school word problems
whose answer is a worked solution ending in "#### <number>".

Unlike the puzzles, GSM8K has no rule to check a solution by: `check` compares the number after the answer's last
"####" with the reference answer of that question (read from the shipped files; an unknown question is never
correct), as d1's correctness reward does (arXiv 2504.12216). Text is kept to printable ASCII (typographic quotes
and dashes folded to ASCII, calculator annotations <<...>> dropped); problems that do not fit the row are skipped.
`sample` draws from the shipped training file, so generation, `dlm task train` and `dlm rl` need the data
(../shared/data/gsm8k; a one-line error names it when missing). A small model will not solve GSM8K: the task is
there so that the pipeline runs on real text.
Row: question padded to 400 chars | answer padded to 320 chars.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import string
from functools import cached_property
from pathlib import Path

from dlm.data.paths import DATA_DIR_ENV, data_dir
from dlm.registry import ConfigError
from dlm.tasks.base import PAD, TASKS, Example, Task

_ANNOTATION = re.compile(r"<<[^>]*>>")
_FOLD = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
                       "\u00a0": " "})
MARK = "####"


def final_number(answer: str) -> str | None:
    """The number after the last '####' (commas and spaces dropped), or None."""
    if MARK not in answer:
        return None
    value = answer.rsplit(MARK, 1)[1].strip().replace(",", "")
    return value if re.fullmatch(r"-?\d+(\.\d+)?", value) else None


@TASKS.register("gsm8k")
class GSM8K(Task):
    name = "gsm8k"
    alphabet = "".join(sorted(set(string.printable) - set("\t\r\x0b\x0c") | {PAD}))
    prompt_len, answer_len = 400, 320
    eval_files = {"test": "gsm8k/test.jsonl"}
    train_file = "gsm8k/train.jsonl.gz"  # what `sample` draws from (not an evaluation file: it is the training data)
    train_size = 5000

    def clean(self, text: str) -> str:
        return _ANNOTATION.sub("", text.translate(_FOLD))

    def fits(self, question: str, answer: str) -> bool:
        allowed = set(self.alphabet) - {PAD}
        return (len(question) <= self.prompt_len and len(answer) <= self.answer_len
                and set(question + answer) <= allowed)

    def read(self, path: Path) -> list[Example]:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as handle:
            items = [json.loads(line) for line in handle if line.strip()]
        cleaned = [(self.clean(item["question"]), self.clean(item["answer"])) for item in items]
        return [Example(q, a) for q, a in cleaned if self.fits(q, a)]

    @cached_property
    def references(self) -> dict[str, str]:
        """question -> reference final number, over the test file (when present) and the training file."""
        shipped = self.load("test") if self.has_split("test") else []
        return {ex.question: final_number(ex.answer) for ex in [*shipped, *self.training_examples]}

    def check(self, question: str, answer: str) -> bool:
        reference = self.references.get(question)
        return reference is not None and final_number(answer) == reference

    def sample(self, rng: random.Random) -> Example:
        return rng.choice(self.training_examples)

    @cached_property
    def training_examples(self) -> list[Example]:
        """The problems of the training file that fit; one-line ConfigError when it is missing."""
        path = data_dir() / self.train_file
        if not path.is_file():
            raise ConfigError(f"task '{self.name}' draws its problems from {path}, which is missing; set "
                              f"{DATA_DIR_ENV} to the folder that holds gsm8k/")
        return self.read(path)
