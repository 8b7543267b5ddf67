"""Where a scored or generated sequence sits in the model's window: laid out like a training block, for every family.

A training block with data.add_bos_eos=true is [BOS] + L-2 stream tokens + [EOS]: position L-1 holds EOS in every
wrap-mode block (and in pad mode whenever a document fills the block). A request that put a real token at L-1
would be scored where the model has only ever seen EOS: an AR model puts p(EOS) ~ 1 there and loses several nats
on that token, a bidirectional model barely notices, and lm-eval numbers would favour diffusion. So every sequence
the harness scores or generates is
    [start] + context + continuation              at most L-1 positions, and when it fills them:
    [start] + context + continuation + [EOS]      the block's own EOS at L-1, clean context, never scored,
the context cut on the left to fit. start is BOS; for models trained without BOS/EOS (add_bos_eos=false, SEDD-style
stream windows) it is EOS, which is how a document starts in their stream, and all L-1 positions after it are usable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.data.tokenizer import special_tokens
from dlm.registry import ConfigError


@dataclass(frozen=True)
class Placement:
    """ids: the sequence; the continuation is ids[start:stop] (the rest is context, and the closing EOS if any)."""

    ids: list[int]
    start: int
    stop: int

    def tensor(self, device: torch.device | str | None = None) -> Tensor:
        """(1, len(ids)) long."""
        return torch.tensor([self.ids], device=device)

    def target(self, device: torch.device | str | None = None) -> Tensor:
        """(1, len(ids)) bool, True on the continuation."""
        columns = torch.arange(len(self.ids), device=device)
        return ((columns >= self.start) & (columns < self.stop)).unsqueeze(0)


@dataclass(frozen=True)
class BlockLayout:
    """length L; start_id opens every sequence; end_id closes a full one at L-1 (None: no closing token)."""

    length: int
    start_id: int
    end_id: int | None

    @classmethod
    def of(cls, model) -> BlockLayout:
        """The layout of `model`'s training blocks (model.config.data, its tokenizer's BOS / EOS)."""
        data, specials = model.config.data, special_tokens(model.tokenizer)
        if data.add_bos_eos:
            return cls(data.seq_len, specials.bos, specials.eos)
        return cls(data.seq_len, specials.eos, None)

    @property
    def room(self) -> int:
        """Tokens of context + continuation that fit after the start token: L-2, or L-1 with no closing token."""
        return self.length - 1 - (self.end_id is not None)

    def place(self, context: list[int], continuation: list[int]) -> Placement:
        """[start] + the last tokens of context that fit + continuation (+ [end] when that fills room + 1 positions).

        context may already begin with the start token (lm-eval's prefix for an empty context); it is not doubled.
        """
        if len(continuation) > self.room:
            raise ConfigError(f"a continuation of {len(continuation)} tokens does not fit the model's "
                              f"{self.length}-token blocks ({self.room} tokens after the opening one)")
        body = context[1:] if context[:1] == [self.start_id] else context
        body = body[max(0, len(body) - (self.room - len(continuation))):]
        ids = [self.start_id, *body, *continuation]
        start = len(ids) - len(continuation)
        if self.end_id is not None and len(ids) == self.room + 1:
            ids.append(self.end_id)
        return Placement(ids, start, start + len(continuation))
