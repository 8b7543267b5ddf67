"""Supervised fine-tuning rows: (prompt, response) pairs of different lengths as fixed-length token rows.

Layout of a row (LLaDA's SFT, arXiv 2502.09992 §2.3; docs/posttraining.md#sft):
    [prompt tokens][response tokens][EOS][EOS ... EOS]      (length L)
The prompt is the condition (`condition_mask` True there: never corrupted, never scored); the response is noised
and scored, and so is the first EOS, which is how a model learns where to stop. The EOS tokens that pad the row to
L count in the loss as LLaDA's SFT counts them (count_eos_padding=True); with count_eos_padding=False they stay in
the row but leave the loss (`scored` False there). The same rows train the autoregressive baseline, whose loss
scores a token l when scored[l] holds and the prompt is unscored the same way.

A JSONL file of SFT pairs holds one object per line with the two text fields "prompt" and "response".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from dlm.registry import ConfigError

PROMPT_FIELD, RESPONSE_FIELD = "prompt", "response"


@dataclass(frozen=True)
class SFTRows:
    """ids (N, L) long; scored (N, L) bool: the positions the loss counts (response, first EOS, padding EOS when
    counted) and the prompt (condition_mask marks it, the loss drops it); condition_mask (N, L) bool: the prompt."""

    ids: Tensor
    scored: Tensor
    condition_mask: Tensor


def sft_rows(pairs: list[tuple[list[int], list[int]]], *, length: int, eos_id: int,
             count_eos_padding: bool = True) -> SFTRows:
    """Token-id pairs (prompt, response) -> SFTRows of `length` tokens each; one-line ConfigError when a pair does
    not fit with its EOS."""
    ids = torch.full((len(pairs), length), eos_id, dtype=torch.long)
    scored = torch.zeros_like(ids, dtype=torch.bool)
    condition = torch.zeros_like(scored)
    for row, (prompt, response) in enumerate(pairs):
        end = len(prompt) + len(response)  # the first EOS goes here
        if end + 1 > length:
            raise ConfigError(f"SFT pair {row} has {len(prompt)} prompt + {len(response)} response tokens + 1 EOS, "
                              f"more than the row length {length}; raise data.seq_len or shorten the pair")
        ids[row, :end] = torch.tensor(prompt + response, dtype=torch.long)
        condition[row, : len(prompt)] = True
        scored[row, : (length if count_eos_padding else end + 1)] = True
    return SFTRows(ids, scored, condition)


def read_sft_pairs(path: str | Path) -> list[tuple[str, str]]:
    """The (prompt, response) strings of a JSONL file; one-line ConfigError on a malformed line."""
    pairs = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                pairs.append((str(item[PROMPT_FIELD]), str(item[RESPONSE_FIELD])))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ConfigError(f"{path}:{number} is not a JSON object with the fields "
                                  f"'{PROMPT_FIELD}' and '{RESPONSE_FIELD}'") from None
    return pairs


def responses_until_eos(ids: Tensor, prompt_lengths: list[int], eos_id: int) -> list[list[int]]:
    """Generated rows (B, L) -> each row's response tokens before its first EOS (generation stops there, per row)."""
    out = []
    for row, start in zip(ids.tolist(), prompt_lengths):
        response = row[start:]
        out.append(response[: response.index(eos_id)] if eos_id in response else response)
    return out
