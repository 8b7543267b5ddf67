"""Input checks shared by the entry points (DiffusionLM.loss / elbo / forward, generate, likelihood, the CLI and
the lm-eval model): each raises a one-line ConfigError `<what> <why> <what to do>` before bad input reaches torch.

This is the one place token ids are checked against a vocabulary; the backbone does not re-check them.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from dlm.registry import ConfigError


def check_batch(x: Tensor, *, what: str = "token ids") -> None:
    """x must be a non-empty (B, L) tensor: what loss / elbo take."""
    if not isinstance(x, Tensor):
        raise ConfigError(f"{what} must be a torch.LongTensor of shape (batch, length), got {type(x).__name__}")
    if x.dim() != 2:
        raise ConfigError(f"{what} must have shape (batch, length), got {tuple(x.shape)}; "
                          "use x[None] for a single sequence")
    if x.numel() == 0:
        raise ConfigError(f"{what} is an empty batch of shape {tuple(x.shape)}; give at least one token per row")


def check_token_ids(x: Tensor, vocab_size: int, *, what: str = "token ids") -> None:
    """x (any shape, e.g. the clamped prompt values) must be an integer tensor with every id in [0, vocab_size)."""
    if x.dtype not in (torch.int64, torch.int32):
        raise ConfigError(f"{what} must be an integer tensor, got {x.dtype}; token ids are integers "
                          "(use .long() only if the values really are ids)")
    if x.numel() == 0:
        return
    low, high = int(x.min()), int(x.max())
    if low < 0:
        raise ConfigError(f"token id {low} is negative; ids must lie in [0, {vocab_size}): does the tokenizer match "
                          "the model's vocabulary?")
    if high >= vocab_size:
        raise ConfigError(f"token id {high} is out of range for vocab_size {vocab_size}; does the tokenizer match "
                          "the model's vocabulary?")


def check_attention_mask(mask: Tensor | None, x: Tensor) -> None:
    """An attention mask is bool / 0-1 of exactly x's shape (B, L)."""
    if mask is not None and tuple(mask.shape) != tuple(x.shape):
        raise ConfigError(f"attention_mask has shape {tuple(mask.shape)} but the tokens have {tuple(x.shape)}; "
                          "give one entry per token (False / 0 at padding)")


def check_times(t: Tensor | None, batch: int, length: int | None = None) -> None:
    """t: a scalar or (B,) tensor of times in [0, 1], or one per token (B, length) when length is given."""
    if t is None or t.dim() == 0:
        return
    if tuple(t.shape) != (batch,) and (length is None or tuple(t.shape) != (batch, length)):
        raise ConfigError(f"t has shape {tuple(t.shape)} for a batch of {batch}; give one time per row, shape "
                          f"({batch},), or a scalar")


def check_positive(name: str, value: Any) -> int:
    """An integer >= 1 (a count: steps, samples, length, Monte Carlo draws) -> int."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not number.is_integer():
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        value = int(number)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def check_finite(name: str, value: float) -> None:
    if not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be a finite number, got {value}")


def check_shape(shape: Any) -> None:
    """generate's shape=(batch, length): two positive integers."""
    if shape is None:
        return
    if len(tuple(shape)) != 2:
        raise ConfigError(f"shape must be (batch, length), got {tuple(shape)}")
    check_positive("shape[0] (batch)", shape[0])
    check_positive("shape[1] (length)", shape[1])


def check_prompt(prompt: Tensor | None) -> None:
    """A prompt holds token ids: an integer tensor (a float tensor would be silently truncated)."""
    if prompt is not None and (not isinstance(prompt, Tensor) or prompt.dtype.is_floating_point or prompt.is_complex()):
        kind = prompt.dtype if isinstance(prompt, Tensor) else type(prompt).__name__
        raise ConfigError(f"prompt must be an integer tensor of token ids, got {kind}; tokenize the text first")


def check_arguments(fn: Callable[..., Any], kwargs: dict[str, Any], *, what: str) -> dict[str, Any]:
    """kwargs must be accepted by fn and cover its required parameters (e.g. lm-eval model_args) -> kwargs."""
    params = {name: p for name, p in inspect.signature(fn).parameters.items() if name not in ("self", "cls")}
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ConfigError(f"{what}: unknown argument {unknown[0]!r}; known: {', '.join(params)}")
    missing = [name for name, p in params.items() if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD
               and name not in kwargs]
    if missing:
        raise ConfigError(f"{what}: missing required argument {missing[0]!r}, e.g. {missing[0]}=...")
    return kwargs
