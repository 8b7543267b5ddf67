"""Exponential moving average of the parameters, used for validation and for the exported model.

After every optimizer step:  shadow <- shadow + (1 - d) (param - shadow),  d = min(decay, (1 + n) / (10 + n)),
n = number of updates so far. The warm-up of d (MDLM's ExponentialMovingAverage, use_num_updates=True) keeps the
average from being dominated by the random initialization in short runs. Shadows are float32 copies of the
parameters' local tensors (this rank's shards under FSDP2); state_dict() holds full tensors by parameter name, so
a checkpoint loads into any number of ranks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from dlm.registry import ConfigError


class EMA:
    """EMA of `model`'s trainable parameters. decay in (0, 1); build it only when cfg.train.ema > 0."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"train.ema={decay} must be 0 (off) or in (0, 1)")
        self.decay = decay
        self.num_updates = 0
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.names = [name for name, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [_local(p).detach().clone().float() for p in self.params]

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the shadow toward the current parameters (call after optimizer.step())."""
        current = [_local(p).detach().float() for p in self.params]
        torch._foreach_lerp_(self.shadow, current, 1.0 - self.current_decay())
        self.num_updates += 1

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Temporarily load the averaged weights into the model (validation); restores the trained ones after."""
        local = [_local(p).detach() for p in self.params]
        backup = [t.clone() for t in local]
        torch._foreach_copy_(local, self.shadow)
        try:
            yield
        finally:
            torch._foreach_copy_(local, backup)

    def weights(self) -> dict[str, Tensor]:
        """{parameter name: full averaged tensor on the CPU} (a collective under FSDP2: call on every rank)."""
        return {name: _full(s, p).to("cpu", copy=True) for name, s, p in zip(self.names, self.shadow, self.params)}

    def state_dict(self) -> dict[str, Any]:
        """{"decay", "num_updates", "shadow": weights()}."""
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.weights()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shadow = state["shadow"]
        if sorted(shadow) != sorted(self.names):
            raise ConfigError("the checkpoint's EMA does not match the model's parameters; was the model changed?")
        self.num_updates = int(state["num_updates"])
        with torch.no_grad():
            for name, local, param in zip(self.names, self.shadow, self.params):
                local.copy_(_shard(shadow[name], param))


def _local(tensor: Tensor) -> Tensor:
    """This rank's part of a DTensor (FSDP2 parameter), or the tensor itself."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _full(local: Tensor, param: Tensor) -> Tensor:
    """The full tensor whose shard on this rank is `local`, sharded like `param` (collective for DTensors)."""
    if not hasattr(param, "device_mesh"):
        return local
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(local, param.device_mesh, param.placements, shape=param.shape,
                              stride=param.stride()).full_tensor()


def _shard(full: Tensor, param: Tensor) -> Tensor:
    """This rank's part of `full` when sharded like `param` (on param's device, float32)."""
    if full.shape != param.shape:
        raise ConfigError(f"the checkpoint's EMA has shape {tuple(full.shape)} where the model has "
                          f"{tuple(param.shape)}; was the model changed?")
    full = full.to(device=param.device, dtype=torch.float32)
    if not hasattr(param, "device_mesh"):
        return full
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(full, param.device_mesh, param.placements).to_local()
