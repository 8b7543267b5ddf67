"""Infilling templates: "To be, or <mask:12> the question" -> prompt ids and the mask of known positions.

`<mask:N>` stands for N unknown tokens; the text around it is tokenized piece by piece and clamped (generate's
prompt / prompt_mask). Whitespace before a placeholder is dropped, so that byte-level BPE (GPT-2) does not end the
piece on a lone space token: the infilled tokens carry their own leading spaces, as " the" after it does.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import torch
from torch import Tensor

from dlm.registry import ConfigError

PLACEHOLDER = re.compile(r"<mask:(\d+)>")


class InfillPrompt(NamedTuple):
    """prompt: LongTensor (1, L) (unknown positions hold 0); prompt_mask: BoolTensor (1, L), True where known."""

    prompt: Tensor
    prompt_mask: Tensor


def parse_infill_template(template: str, tokenizer) -> InfillPrompt:
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
        text = piece.rstrip() if k + 1 < len(pieces) else piece
        if text:
            encoded = tokenizer.encode(text, add_special_tokens=False)
            ids += encoded
            known += [True] * len(encoded)
    if all(known):
        raise ConfigError("the template has no <mask:N> span to fill in")
    return InfillPrompt(torch.tensor([ids], dtype=torch.long), torch.tensor([known], dtype=torch.bool))
