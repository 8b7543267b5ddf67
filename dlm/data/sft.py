"""Supervised fine-tuning rows: (prompt, response) pairs of different lengths as fixed-length token rows.

Layout of a row (d1's prompt left padding, arXiv 2504.12216; LLaDA's SFT, arXiv 2502.09992 §2.3;
docs/posttraining.md#sft):
    [PAD ... PAD][prompt tokens][response tokens][EOS][EOS ... EOS]      (length L)
    |<--------- prompt_len P -------->|
The first P positions are the condition (`condition_mask`: never corrupted, never scored; with
objective.condition_prefix = P the training loop treats them so); the response is noised and scored, and so is the
first EOS, which is how a model learns where to stop. The EOS tokens that pad the row to L count in the loss as
LLaDA's SFT counts them (count_eos_padding=True); with count_eos_padding=False they stay in the row but leave the
loss (`scored` False there). The same rows train the autoregressive baseline, whose loss scores token l when
scored[l] holds: its prompt is unscored the same way.

A JSONL file of SFT pairs holds one object per line with the two text fields "prompt" and "response". As a data
source, ``sft:<file.jsonl>:<P>[:no_eos_padding]`` (what `dlm finetune` sets) gives these rows to `dlm train`,
the last data.val_fraction of the pairs (or the pairs of data.val_source, a JSONL file) as validation rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from dlm.config import DataConfig
from dlm.data.tokenizer import build_tokenizer, special_tokens
from dlm.registry import SOURCES, ConfigError

PROMPT_FIELD, RESPONSE_FIELD = "prompt", "response"
PREFIX, NO_EOS_PADDING = "sft", "no_eos_padding"


@dataclass(frozen=True)
class SFTRows:
    """ids (N, L) long; scored (N, L) bool: the positions the loss counts (response, first EOS, padding EOS when
    counted); condition_mask (N, L) bool: the prompt positions [0, P)."""

    ids: Tensor
    scored: Tensor
    condition_mask: Tensor


def sft_rows(pairs: list[tuple[list[int], list[int]]], *, prompt_len: int, length: int, eos_id: int, pad_id: int,
             count_eos_padding: bool = True) -> SFTRows:
    """Token-id pairs (prompt, response) -> SFTRows of `length` tokens, prompts left-padded to prompt_len;
    one-line ConfigError when a pair does not fit."""
    ids = torch.full((len(pairs), length), eos_id, dtype=torch.long)
    ids[:, :prompt_len] = pad_id
    scored = torch.zeros_like(ids, dtype=torch.bool)
    for row, (prompt, response) in enumerate(pairs):
        end = prompt_len + len(response)  # the first EOS goes here
        if len(prompt) > prompt_len or end + 1 > length:
            raise ConfigError(f"SFT pair {row} has {len(prompt)} prompt + {len(response)} response tokens + 1 EOS; "
                              f"rows hold {prompt_len} + {length - prompt_len}: raise data.seq_len or shorten it")
        ids[row, prompt_len - len(prompt) : end] = torch.tensor(prompt + response, dtype=torch.long)
        scored[row, prompt_len : (length if count_eos_padding else end + 1)] = True
    condition = torch.zeros_like(scored)
    condition[:, :prompt_len] = True
    return SFTRows(ids, scored, condition)


def read_sft_pairs(path: str | Path, *, need_response: bool = True) -> list[tuple[str, str]]:
    """The (prompt, response) strings of a JSONL file; one-line ConfigError on a malformed line. need_response=False
    reads prompts alone (a missing response reads as "")."""
    if not Path(path).is_file():
        raise ConfigError(f"SFT file not found: {path}; give a JSONL file of {{\"prompt\": ..., \"response\": ...}}")
    pairs = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                response = item[RESPONSE_FIELD] if need_response else item.get(RESPONSE_FIELD, "")
                pairs.append((str(item[PROMPT_FIELD]), str(response)))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                fields = f"'{PROMPT_FIELD}' and '{RESPONSE_FIELD}'" if need_response else f"'{PROMPT_FIELD}'"
                raise ConfigError(f"{path}:{number} is not a JSON object with the field(s) {fields}") from None
    return pairs


def responses_until_eos(ids: Tensor, prompt_len: int, eos_id: int) -> list[list[int]]:
    """Generated rows (B, L) -> each row's response tokens before its first EOS (generation stops there, per row)."""
    out = []
    for row in ids[:, prompt_len:].tolist():
        out.append(row[: row.index(eos_id)] if eos_id in row else row)
    return out


def parse_sft_source(spec: str) -> tuple[str, int, bool]:
    """'sft:<path>:<P>[:no_eos_padding]' -> (path, P, count_eos_padding). One-line ConfigError otherwise."""
    parts = spec.split(":")
    count = parts[-1] != NO_EOS_PADDING
    parts = parts if count else parts[:-1]
    if parts[0] != PREFIX or len(parts) < 3 or not parts[-1].isdigit():
        raise ConfigError(f"SFT source '{spec}' must look like sft:<file.jsonl>:<prompt tokens>[:{NO_EOS_PADDING}]")
    return ":".join(parts[1:-1]), int(parts[-1]), count


def encode_pairs(tokenizer, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    return [(ids(prompt), ids(response)) for prompt, response in pairs]


class SFTSource:
    """SOURCES["sft"]: token rows of an SFT JSONL file (dlm.data.splits.row_source hands it build_splits(cfg) and
    tokenizer(cfg)); it gives rows, not documents."""

    def __call__(self, split: str, cfg: DataConfig) -> list[str]:
        raise ConfigError("an sft: source gives token rows, not documents; train on it with `dlm finetune`")

    def tokenizer(self, cfg: DataConfig):
        """cfg.tokenizer; 'char' and 'bpe:<N>' are built from the training pairs' text."""
        needs_texts = cfg.tokenizer == "char" or cfg.tokenizer.startswith("bpe:")
        pairs = read_sft_pairs(parse_sft_source(cfg.source)[0]) if needs_texts else []
        return build_tokenizer(cfg.tokenizer, [p + r for p, r in pairs] if needs_texts else None)

    def build_splits(self, cfg: DataConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        path, prompt_len, count = parse_sft_source(cfg.source)
        tokenizer = self.tokenizer(cfg)
        specials = special_tokens(tokenizer)
        pairs = read_sft_pairs(path)
        if cfg.val_source:
            train, val = pairs, read_sft_pairs(cfg.val_source)
        else:
            held_out = max(1, round(len(pairs) * cfg.val_fraction))
            if held_out >= len(pairs):
                raise ConfigError(f"{path} has {len(pairs)} pairs: too few to hold out data.val_fraction="
                                  f"{cfg.val_fraction} for validation; add pairs or set data.val_source")
            train, val = pairs[:-held_out], pairs[-held_out:]
        rows = [sft_rows(encode_pairs(tokenizer, part), prompt_len=prompt_len, length=cfg.seq_len,
                         eos_id=specials.eos, pad_id=specials.pad, count_eos_padding=count) for part in (train, val)]
        return rows[0].ids, rows[0].scored, rows[1].ids, rows[1].scored


SOURCES.register(PREFIX)(SFTSource())
