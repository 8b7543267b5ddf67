"""Recordable sampling noise: every uniform a sampling run consumes, in order, so it can be replayed exactly.

All randomness of `generate` (the prior draw, every Gumbel-max categorical, random remasking scores) flows through
one source of U(0, 1) float64 tensors. A NoiseTape in recording mode keeps them; `tape.replay()` hands them back in
the same order, which reproduces the trajectory bit for bit (DICE inversion, arXiv 2410.08207, needs this), and a
tape built from edited uniforms injects chosen noise.

Per-row streams: `generator` may be a sequence of B torch.Generators, one per batch row. Each draw then says which
row every leading entry belongs to (`rows`), and row b's entries come from generator b only, so a row's noise does
not depend on which other rows share its batch (batch invariance, dlm/cache/__init__.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dlm.registry import ConfigError
from dlm.utils.categorical import uniform_noise

Generators = torch.Generator | Sequence[torch.Generator] | None


def row_uniform(shape: tuple[int, ...], *, generator: Generators = None, device: torch.device | str | None = None,
                rows: Tensor | None = None) -> Tensor:
    """U(0, 1) float64 of `shape`. With one generator (or None): one draw. With a sequence of per-row generators:
    rows (shape[0],) long gives the batch row of each leading entry, and row b's entries (in order) are one draw
    from generator[b]."""
    if generator is None or isinstance(generator, torch.Generator):
        return uniform_noise(tuple(shape), generator=generator, device=device)
    if rows is None:
        raise ConfigError("per-row generators need to know the row of every draw; this sampler does not say")
    out = torch.empty(tuple(shape), dtype=torch.float64, device=device)
    for row in rows.unique().tolist():
        chosen = rows == row
        out[chosen] = uniform_noise((int(chosen.sum()), *shape[1:]), generator=generator[row], device=device)
    return out


class NoiseTape:
    """Record (draws=None) or replay (draws given) the uniforms of one sampling run.

    tape = NoiseTape(); x = generate(..., noise=tape); generate(..., noise=tape.replay()) returns x again.
    """

    def __init__(self, draws: list[Tensor] | None = None):
        self.replaying = draws is not None
        self.draws: list[Tensor] = list(draws) if draws is not None else []
        self._next = 0

    def uniform(self, shape: tuple[int, ...], *, generator: Generators = None,
                device: torch.device | str | None = None, rows: Tensor | None = None) -> Tensor:
        """U(0, 1) float64 of `shape`: a fresh draw (recorded), or the next recorded one. rows: see row_uniform."""
        if not self.replaying:
            draw = row_uniform(tuple(shape), generator=generator, device=device, rows=rows)
            self.draws.append(draw)
            return draw
        if self._next >= len(self.draws):
            raise ConfigError(f"the noise tape holds {len(self.draws)} draws and the run asked for more; "
                              "replay with the same sampler, steps, shape and prompt")
        draw = self.draws[self._next]
        if tuple(draw.shape) != tuple(shape):
            raise ConfigError(f"noise draw {self._next} has shape {tuple(draw.shape)} but the run asked for "
                              f"{tuple(shape)}; replay with the same sampler, steps, shape and prompt")
        self._next += 1
        return draw.to(device)

    def replay(self) -> NoiseTape:
        """A tape that returns this tape's draws again, from the first."""
        return NoiseTape(self.draws)

    def __len__(self) -> int:
        return len(self.draws)
