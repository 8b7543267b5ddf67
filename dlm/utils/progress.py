"""Progress of long loops (training, sampling, evaluation): a tqdm bar on a terminal, plain lines in a log.

tqdm redraws its bar with carriage returns, which a terminal overwrites in place but a redirected log keeps: a
quickstart log was hundreds of kilobytes of bar redraws. So `progress(...)` returns a tqdm bar (tqdm.auto: also a
notebook widget) when its stream is a terminal or a Jupyter kernel, and otherwise a LineProgress that prints one
plain line every `every` updates and one at the end, never a carriage return. Both take the same arguments and
support iteration, update(n), set_postfix(...) and close().
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

LINES_PER_LOOP = 10  # the default interval when `every` is not given: about ten lines per loop


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, disable: bool = False, every: int = 0, file: TextIO | None = None,
             **tqdm_options: Any) -> Any:
    """A tqdm bar on a terminal (tqdm_options go to it), else a LineProgress printing every `every` updates
    (0: about LINES_PER_LOOP lines per loop)."""
    stream = file if file is not None else sys.stderr
    if _interactive(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, file=file,
                    **tqdm_options)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, every=every,
                        file=stream)


def _interactive(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) or (stream is sys.stderr and "ipykernel" in sys.modules)


class LineProgress:
    """`desc: n/total (pct) [rate unit/s] key=value ...` on its own line every `every` updates and at close."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, disable: bool = False, every: int = 0,
                 file: TextIO | None = None):
        self.iterable, self.desc, self.unit, self.disable = iterable, desc, unit, disable
        self.total = total if total is not None else len(iterable) if hasattr(iterable, "__len__") else None
        self.every = every or max(1, (self.total or 100 * LINES_PER_LOOP) // LINES_PER_LOOP)
        self.file = file if file is not None else sys.stderr
        self.n = self.start_n = self.last_printed = initial
        self.start = time.perf_counter()
        self.postfix = ""
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if n and self.n // self.every > self.last_printed // self.every:
            self._print()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = " ".join(f"{key}={value}" for key, value in items.items())

    def close(self) -> None:
        if not self.closed and self.n != self.last_printed:
            self._print()
        self.closed = True

    def _print(self) -> None:
        self.last_printed = self.n
        if self.disable:
            return
        seconds = time.perf_counter() - self.start
        done = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n}"
        rate = f"{(self.n - self.start_n) / seconds:.3g} {self.unit}/s" if seconds > 0 else ""
        parts = [f"{self.desc}:" if self.desc else "", f"{done} {self.unit}", rate, self.postfix]
        print(" ".join(part for part in parts if part), file=self.file, flush=True)
