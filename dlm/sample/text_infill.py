"""Infilling templates: "To be, or <mask:12> the question" -> prompt ids and the mask of known positions.

`<mask:N>` stands for N unknown tokens; the text around it is tokenized piece by piece and clamped (generate's
prompt / prompt_mask). The user's whitespace is kept, except where the tokenizer folds a space into the next word
(byte-level BPE such as GPT-2, where "or " would end on a lone space token): there whitespace before a placeholder
is dropped and the infilled tokens carry their own leading spaces, as " the" after it does. Characters the
tokenizer cannot represent (they would become its unknown token and vanish on decoding) are refused, unless
allow_unk (the rule of every text entry point, dlm/data/user_text.py).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import torch
from torch import Tensor

from dlm.data.user_text import encode_user_text
from dlm.registry import ConfigError

PLACEHOLDER = re.compile(r"<mask:(\d+)>")


class InfillPrompt(NamedTuple):
    """prompt: LongTensor (1, L) (unknown positions hold 0); prompt_mask: BoolTensor (1, L), True where known."""

    prompt: Tensor
    prompt_mask: Tensor


def parse_infill_template(template: str, tokenizer, *, allow_unk: bool = False) -> InfillPrompt:
    """Tokenize `template` with a Hugging Face tokenizer (no special tokens added) around its <mask:N> spans."""
    ids: list[int] = []
    known: list[bool] = []
    pieces = PLACEHOLDER.split(template)  # text, count, text, count, ..., text
    for k, piece in enumerate(pieces):
        if k % 2:
            ids += [0] * int(piece)
            known += [False] * int(piece)
            continue
        if "<mask" in piece:
            raise ConfigError(f"malformed placeholder in {piece!r}: write <mask:N> with N the number of tokens")
        text = piece.rstrip() if k + 1 < len(pieces) and _spaces_fold_into_words(tokenizer) else piece
        if text:
            encoded = encode_user_text(tokenizer, text, what="the template (--text)", allow_unk=allow_unk)
            ids += encoded
            known += [True] * len(encoded)
    if all(known):
        raise ConfigError("the template has no <mask:N> span to fill in")
    return InfillPrompt(torch.tensor([ids], dtype=torch.long), torch.tensor([known], dtype=torch.bool))


def _spaces_fold_into_words(tokenizer) -> bool:
    """Whether " a" is one token (byte-level BPE) rather than a space token and an "a" token (char level)."""
    return len(tokenizer.encode(" a", add_special_tokens=False)) == 1
