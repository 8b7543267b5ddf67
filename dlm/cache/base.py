"""CachePolicy: which positions a denoiser call recomputes, and the cached forward that reads the rest from a KVStore.

`generate(..., cache=policy)` hands the policy to the denoiser; `DiffusionLM(xt, t, cache=policy)` then calls
`policy.predict(model, xt, t)`, which
  1. asks the policy for recompute (B, L) bool: every position on the first call of a block (`begin_block`) and every
     `refresh_every` calls, otherwise what the subclass's `select` says;
  2. runs the model's one forward pass (`forward_positions`, the CacheableDenoiser protocol below) with itself as
     the KV hook.
     All positions: the plain forward, the hook storing every key/value (logits bit-identical to the
     uncached call); otherwise, per row, gathers the n_b recomputed positions into index (B, n), n = max_b n_b, rows
     padded with the store's scratch slot, and runs the backbone on those tokens at their absolute positions (rotary):
     their queries attend to the keys/values of ALL L positions, fresh ones scattered into the store by the hook
     (`update`), the others read from it;
  3. applies the objective's parameterization to the gathered logits (it is per position) and scatters the result
     into the stored prediction (B, L, N): positions not recomputed carry what the call that last computed them said;
  4. lets the policy `commit` which stored positions later calls may read.
A call costs about n/L of a full one (linear layers and attention alike): FLOPs ~ n (24 d^2 + 4 d L) per layer
and row, against L (24 d^2 + 4 d L).

Batch invariance: every decision is per row (each row's recompute set, its gathered index, its scratch padding),
and a row's keys are its own, so a row's computation does not depend on its batch neighbours beyond the
floating-point reduction order of batched kernels (see dlm/cache/__init__.py for the exact guarantee).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, Protocol

import torch
from torch import Tensor

from dlm.cache.store import KVStore
from dlm.registry import CACHES, ConfigError
from dlm.types import Prediction

OUTPUTS = ("log_probs", "log_score")


class CacheableDenoiser(Protocol):
    """What a cache policy needs of a model (DiffusionLM is one): its process, and the forward pass on some
    positions of the sequence with a KV hook (DiffusionLM.forward_positions documents the arguments)."""

    process: Any

    def forward_positions(self, tokens: Tensor, t: Tensor | None, *, positions: Tensor | None = None,
                          length: int | None = None, kv: Any = None, attention_mask: Tensor | None = None,
                          **backbone_kwargs: Any) -> Prediction: ...
_UNCHECKED = object()  # no model seen yet: check() the first model's process


class CachePolicy(ABC):
    """Subclasses define `select` (what to recompute) and `commit` (what becomes readable), and may `check` the
    process. One policy serves one batch (fixed B) per generate run; `reset` starts over."""

    def __init__(self, refresh_every: int = 0):
        if refresh_every < 0:
            raise ConfigError(f"refresh_every must be >= 0 (0: only the policy's own rule), got {refresh_every}")
        self.refresh_every = refresh_every
        self.store = KVStore()
        self.reset()

    # --- lifecycle (generate drives it) ---------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything stored: the next call is a full forward. generate calls this at the start of a run."""
        self.store.reset()
        self.kept: dict[str, Tensor] = {}
        self.editable: Tensor | None = None
        self.process: Any = _UNCHECKED
        self.calls = 0
        self._index: Tensor | None = None
        self._length = 0

    def begin_block(self, editable: Tensor) -> None:
        """A new block of decoding starts: editable (B, L) bool, the positions it may change. Its first call is a
        full forward (the reference implementations reset their caches at every block)."""
        self.editable = editable
        self.calls = 0
        self.store.reserve(editable.shape[0], editable.shape[1], editable.device)

    # --- what subclasses decide -----------------------------------------------------------------------------
    def check(self, process: Any) -> None:  # noqa: B027  (optional hook: every process is fine by default)
        """Raise a one-line ConfigError when this policy cannot serve a model with this process."""

    @abstractmethod
    def select(self, xt: Tensor) -> Tensor:
        """bool (B, L): positions whose queries and keys/values this (non-refresh) call recomputes."""

    @abstractmethod
    def commit(self, xt: Tensor, recomputed: Tensor) -> None:
        """After a call on xt that recomputed `recomputed`: set self.store.valid for the positions later calls read."""

    # --- the cached forward ---------------------------------------------------------------------------------
    def refresh_due(self) -> bool:
        return self.calls == 0 or (self.refresh_every > 0 and self.calls % self.refresh_every == 0)

    def predict(self, model: CacheableDenoiser, xt: Tensor, t: Tensor | None, *, attention_mask: Tensor | None = None,
                **backbone_kwargs: Any) -> Prediction:
        """One cached denoiser call: Prediction with (B, L, N) tensors (see the module docstring).
        attention_mask: bool (B, L), False at padding (never attended, never recomputed after a full call)."""
        B, L = xt.shape
        self._prepare(model, B, L, xt.device)
        full = self.refresh_due()
        recompute = torch.ones_like(xt, dtype=torch.bool) if full else self.select(xt)
        if attention_mask is not None and not full:
            recompute = recompute & attention_mask.bool()
        if full or bool(recompute.all()):
            prediction = self._full(model, xt, t, attention_mask, backbone_kwargs)
        elif bool(recompute.any()):
            prediction = self._partial(model, xt, t, recompute, attention_mask, backbone_kwargs)
        else:
            prediction = Prediction(**{name: buffer[:, :L] for name, buffer in self.kept.items()})
        self.calls += 1
        self.commit(xt, recompute)
        return prediction

    def update(self, layer: int, k: Tensor, v: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """The backbone's KV hook: store the fresh k, v (B, H, n, D); return the keys/values to attend to."""
        self.store.write(layer, k, v, self._index)
        if self._index is None:
            return k, v
        return self.store.read(layer, self._length)

    def _prepare(self, model: CacheableDenoiser, batch: int, length: int, device: torch.device) -> None:
        if model.process is not self.process:
            self.check(model.process)
            self.process = model.process
        if self.store.valid is not None and self.store.valid.shape[0] != batch:
            raise ConfigError(f"a cache policy serves one batch per run: it holds {self.store.valid.shape[0]} rows "
                              f"and was called with {batch}; call reset() (generate does) before a new batch")
        self.store.reserve(batch, length, device)
        self._length = length

    def _full(self, model: CacheableDenoiser, xt: Tensor, t: Tensor | None, padding: Tensor | None,
              kwargs: dict[str, Any]) -> Prediction:
        """The uncached forward, with the hook storing every position's keys/values."""
        self._index = None
        prediction = model.forward_positions(xt, t, kv=self, attention_mask=padding, **kwargs)
        self._keep(prediction, None)
        return prediction

    def _partial(self, model: CacheableDenoiser, xt: Tensor, t: Tensor | None, recompute: Tensor,
                 padding: Tensor | None, kwargs: dict[str, Any]) -> Prediction:
        """Queries at the recomputed positions only; keys/values of every position (fresh or stored)."""
        L = xt.shape[1]
        index = gather_index(recompute, scratch=self.store.capacity)  # (B, n)
        positions = index.clamp_max(L - 1)  # scratch entries compute a throw-away copy of position L - 1
        self._index = index
        try:
            prediction = model.forward_positions(xt.gather(1, positions), t, positions=positions, length=L, kv=self,
                                        attention_mask=padding, **kwargs)
        finally:
            self._index = None
        return self._keep(prediction, index)

    def _keep(self, prediction: Prediction, index: Tensor | None) -> Prediction:
        """Store the fresh prediction (all positions, or (B, n, N) at index) -> the full (B, L, N) prediction.
        The returned tensors of a partial call are views of the stored ones, valid until the next call."""
        out = {}
        for name in OUTPUTS:
            value = getattr(prediction, name)
            if value is None:
                continue
            buffer = self._buffer(name, value)
            if index is None:
                buffer[:, :value.shape[1]] = value
                out[name] = value
            else:
                buffer.scatter_(1, index[..., None].expand(-1, -1, value.shape[-1]), value.to(buffer.dtype))
                out[name] = buffer[:, :self._length]
        return Prediction(**out)

    def _buffer(self, name: str, like: Tensor) -> Tensor:
        """The stored (B, C + 1, N) tensor for one output, grown to the store's capacity (scratch row last)."""
        rows = self.store.capacity + 1
        buffer = self.kept.get(name)
        if buffer is None or buffer.shape[0] != like.shape[0] or buffer.shape[2] != like.shape[2]:
            buffer = like.new_zeros(like.shape[0], rows, like.shape[2])
        elif buffer.shape[1] < rows:
            grown = like.new_zeros(like.shape[0], rows, like.shape[2])
            grown[:, :buffer.shape[1] - 1] = buffer[:, :-1]
            buffer = grown
        self.kept[name] = buffer
        return buffer

    def stored_confidence(self, length: int) -> Tensor:
        """(B, length) the largest stored output per position (top log-prob or log-score): how sure the model was
        when it last computed the position."""
        return next(iter(self.kept.values()))[:, :length].max(-1).values


def require_masked(name: str, process: Any) -> None:
    """One-line ConfigError unless `process` is masked (absorbing): the policies that track decoded tokens."""
    from dlm.process.base import Capability

    if process is None or Capability.ABSORBING not in process.capabilities:
        kind = type(process).__name__ if process is not None else "an autoregressive model"
        raise ConfigError(f"cache '{name}' tracks the decoded tokens of a masked (absorbing) model, got {kind}")


def gather_index(recompute: Tensor, *, scratch: int) -> Tensor:
    """bool (B, L) -> long (B, n): each row's recomputed positions in increasing order, n = the largest count, rows
    with fewer padded with `scratch`."""
    counts = recompute.sum(-1)
    n = int(counts.max())
    order = torch.argsort((~recompute).to(torch.int8), dim=-1, stable=True)[:, :n]
    return order.masked_fill(torch.arange(n, device=recompute.device) >= counts[:, None], scratch)


def get_cache(name: str, **options: Any) -> CachePolicy:
    """Build a registered cache policy by name, e.g. get_cache("dkv_decode", refresh_every=4). The name may carry
    integer options as on the command line (`dlm sample --cache dkv_decode:refresh_every=8`), comma-separated."""
    name, _, spec = name.partition(":")
    for item in filter(None, spec.split(",")):
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not value.lstrip("-").isdigit():
            raise ConfigError(f"cache option '{item}' must be key=<integer>, e.g. dkv_decode:refresh_every=8")
        options.setdefault(key, int(value))
    factory = CACHES.get_factory(name)
    known = sorted(inspect.signature(factory).parameters)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"cache '{name}' has no option {unknown[0]!r}; options: {', '.join(known)}")
    return factory(**options)
