"""Watch a sequence fill in: record generate's on_step states, render them as terminal lines or an HTML page.

    recorder = StepRecorder()
    generate(model, model.process, "ancestral", steps=64, shape=(1, 64), on_step=recorder)
    print("\n".join(render_text(recorder, token_decoder(tokenizer), mask_id=model.process.mask_id)))
    write_html("steps.html", recorder, token_decoder(tokenizer), mask_id=model.process.mask_id)
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from torch import Tensor

BOLD, RESET = "\033[1m", "\033[0m"


class StepRecorder:
    """An on_step callback keeping (index, t, x) of every state generate reports; x copied to the CPU, (B, L)."""

    def __init__(self):
        self.indices: list[int] = []
        self.times: list[float] = []
        self.states: list[Tensor] = []

    def __call__(self, index: int, t: float, x: Tensor) -> None:
        self.indices.append(index)
        self.times.append(t)
        self.states.append(x.detach().cpu().clone())


SPECIAL_SYMBOL = "|"  # bos / eos / pad between documents: one visible column, so words are not glued
_VISIBLE = str.maketrans({"\n": "⏎", "\r": "⏎", "\t": "→"})


def token_decoder(tokenizer=None) -> Callable[[int], str]:
    """id -> display text on one row: the tokenizer's decoding of the single id with newlines and tabs shown as
    ⏎ / →, special tokens as "|"; without a tokenizer, the id itself followed by a space."""
    if tokenizer is None:
        return lambda token: f"{token} "
    specials = set(tokenizer.all_special_ids)
    return lambda token: SPECIAL_SYMBOL if token in specials else tokenizer.decode([token]).translate(_VISIBLE)


def _changes(recorder: StepRecorder, row: int) -> list[tuple[int, float, list[int], set[int]]]:
    """Per state that differs from the previous one: (index, t, tokens, positions that changed)."""
    out, previous = [], None
    for index, t, x in zip(recorder.indices, recorder.times, recorder.states):
        tokens = x[row].tolist()
        changed = set() if previous is None else {l for l, (a, b) in enumerate(zip(previous, tokens)) if a != b}
        if previous is None or changed:
            out.append((index, t, tokens, changed))
        previous = tokens
    return out


def render_text(recorder: StepRecorder, decode: Callable[[int], str], *, mask_id: int | None = None, row: int = 0,
                mask_symbol: str = "_", color: bool = False) -> list[str]:
    """One line per state of batch row `row` that differs from the one before: "step  t  text". Masks show as
    mask_symbol; with color, the tokens that just changed are bold (ANSI)."""
    lines = []
    for index, t, tokens, changed in _changes(recorder, row):
        pieces = []
        for l, token in enumerate(tokens):
            piece = mask_symbol if token == mask_id else decode(token)
            pieces.append(f"{BOLD}{piece}{RESET}" if color and l in changed else piece)
        lines.append(f"{index:4d}  t={t:.3f}  " + "".join(pieces))
    return lines


def write_html(path: str | Path, recorder: StepRecorder, decode: Callable[[int], str], *, mask_id: int | None = None,
               row: int = 0) -> Path:
    """Write a self-contained HTML page: one line per changing state, new tokens highlighted, masks grey."""
    rows = []
    for index, t, tokens, changed in _changes(recorder, row):
        spans = []
        for l, token in enumerate(tokens):
            if token == mask_id:
                spans.append('<span class="mask">&#9617;</span>')
            else:
                css = "new" if l in changed else "old"
                spans.append(f'<span class="{css}">{html.escape(decode(token))}</span>')
        rows.append(f'<div><span class="step">{index:4d} t={t:.3f}</span> {"".join(spans)}</div>')
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>dlm sampling steps</title><style>"
            "body{font-family:monospace;white-space:pre-wrap} .mask{color:#bbb} .new{background:#ffe08a}"
            " .step{color:#888;margin-right:1em}</style></head><body>\n" + "\n".join(rows) + "\n</body></html>\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
