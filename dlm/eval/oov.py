"""Out-of-vocabulary accounting: tokens the tokenizer had to map to its unknown token.

A char-level tokenizer built from one corpus maps every character it never saw to <unk>; on held-out text those
were 1.3-1.55% of the characters and, at ~9-10 nats each, 4-6% of an AR model's NLL. Evaluations count them among
the scored tokens, report the rate beside every perplexity, warn above a threshold, and can leave them out of the
score (they stay in the input as context), which the results record.
"""

from __future__ import annotations

import sys

from torch import Tensor

from dlm.data.user_text import unknown_id as oov_id  # the id that marks unknown text (None for byte-level BPE)

OOV_WARN_RATE = 1e-3  # warn when more than 0.1% of the scored tokens are unknown


def count_oov(ids: Tensor, scored: Tensor, unk: int | None) -> int:
    """Scored positions (bool, same shape as ids) that hold the unknown token."""
    return 0 if unk is None else int(((ids == unk) & scored).sum())


def text_oov(tokenizer, text: str) -> tuple[int, int]:
    """(unknown tokens, tokens) of `text` under `tokenizer`, no special tokens added."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    unk = oov_id(tokenizer)
    return (0 if unk is None else sum(i == unk for i in ids)), len(ids)


def warn_oov(what: str, oov: int, total: int, threshold: float = OOV_WARN_RATE) -> bool:
    """Print a one-line warning on stderr when oov / total exceeds threshold; True iff it warned."""
    if total <= 0 or oov / total <= threshold:
        return False
    print(f"warning: {oov} of the {total} scored tokens of {what} ({100 * oov / total:.2f}%) are out of the "
          "tokenizer's vocabulary (<unk>); each costs several nats; exclude them with --exclude-oov "
          "(lm-eval: exclude_oov=true)", file=sys.stderr)
    return True
