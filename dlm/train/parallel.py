"""Parallelism applied from the outside: torch.distributed from torchrun's environment, DDP or FSDP2, compile, bf16.

Multi-process runs are launched by torchrun (``torchrun --nproc_per_node=2 -m dlm.cli train ...``), which sets
RANK, WORLD_SIZE and LOCAL_RANK; there is no launcher here. The model code never sees any of this.

Randomness layout. The global batch of an optimizer step (cfg.train.batch_size rows) is cut into
S = world_size * grad_accum shards: TokenBatches gives rank r the rows r, r + W, r + 2W, ... of the global batch,
and its micro-batch m takes every grad_accum-th of those, so shard k = r + W m holds the global rows i with
i mod S = k. All randomness of a shard (t, x_t, dropout) comes from generators seeded with (seed, step, k). A run is
therefore determined by its micro-batch size B / S: 2 GPUs x 1 micro-batch and 1 GPU x 2 accumulation steps train
bit-for-bit the same model (up to float summation order), and resuming needs no saved generator state. (Duo instead
draws t for the global batch and slices it; our objectives draw t and x_t from one generator inside
`DiffusionLM.loss`, so keying the generator by shard is the way to get a layout-independent run.)
"""

from __future__ import annotations

import hashlib
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import Tensor, nn

from dlm.config import TrainConfig
from dlm.registry import ConfigError
from dlm.types import LossOutput

PARALLEL = ("ddp", "fsdp")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Dist:
    """This process's place in the job. world_size 1 means no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed() -> Dist:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK and join the process group (nccl on GPU, gloo on CPU)."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank % torch.cuda.device_count()) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    return Dist(rank, world, local_rank, device)


def shutdown(dist: Dist) -> None:
    if dist.distributed and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def all_reduce_sum(values: Tensor, dist: Dist) -> Tensor:
    """Sum a tensor (on dist.device) over ranks, in place; returns it."""
    if dist.distributed:
        torch_dist.all_reduce(values)
    return values


def barrier(dist: Dist) -> None:
    if dist.distributed:
        torch_dist.barrier()


def shard_seed(seed: int, step: int, shard: int, stream: str = "train") -> int:
    """A 63-bit seed for shard `shard` of optimizer step `step` (see the module docstring)."""
    digest = hashlib.blake2b(f"{stream}/{seed}/{step}/{shard}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def check_layout(cfg: TrainConfig, dist: Dist) -> None:
    """One-line ConfigError unless the global batch splits evenly over ranks and accumulation steps."""
    if cfg.parallel not in PARALLEL:
        raise ConfigError(f"unknown train.parallel '{cfg.parallel}'; choose one of: {', '.join(PARALLEL)}")
    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"unknown train.precision '{cfg.precision}'; choose one of: {', '.join(PRECISIONS)}")
    if cfg.precision == "bf16" and dist.device.type != "cuda":
        raise ConfigError("train.precision=bf16 needs a CUDA GPU; use train.precision=fp32 on the CPU")
    shards = dist.world_size * cfg.grad_accum
    if cfg.grad_accum < 1 or cfg.batch_size < 1 or cfg.batch_size % shards:
        raise ConfigError(f"train.batch_size={cfg.batch_size} must be a positive multiple of world size "
                          f"{dist.world_size} x train.grad_accum={cfg.grad_accum}")


class LossModule(nn.Module):
    """forward(x0, attention_mask, generator, step) -> (loss, nll_sum, num_tokens). DDP syncs gradients only
    through a module's forward, so the loss (not just the denoiser) is what gets wrapped."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x0: Tensor, attention_mask: Tensor | None, generator: torch.Generator, step: int | None):
        out = self.model.loss(x0, attention_mask=attention_mask, generator=generator, step=step)
        return out.loss, out.nll_sum, out.num_tokens


class Parallel:
    """The model as the training loop drives it: compiled, wrapped in DDP or sharded with FSDP2, under autocast.

    `model` itself stays the object to save and evaluate (FSDP2 shards it in place; DDP wraps a LossModule
    around it). Gradients of a step are averaged over ranks (DDP / FSDP2 default).
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, dist: Dist):
        self.model, self.cfg, self.dist = model, cfg, dist
        if cfg.compile:
            model.backbone.compile()  # in place: parameter names (and checkpoints) are unchanged
        self.fsdp = dist.distributed and cfg.parallel == "fsdp"
        if self.fsdp:
            from torch.distributed.fsdp import fully_shard

            for block in model.backbone.blocks:
                fully_shard(block)
            fully_shard(model)
        module: nn.Module = LossModule(model)
        if dist.distributed and not self.fsdp:
            device_ids = [dist.device.index] if dist.device.type == "cuda" else None
            module = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
        self.module = module

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast on GPU when cfg.precision == 'bf16'; posteriors and losses upcast inside the objective."""
        if self.cfg.precision != "bf16":
            return nullcontext()
        return torch.autocast(self.dist.device.type, dtype=torch.bfloat16)

    def forward_backward(self, x0: Tensor, attention_mask: Tensor | None, generator: torch.Generator, *,
                         sync: bool, step: int | None = None) -> LossOutput:
        """Forward one micro-batch x0 (b, L) of optimizer step `step` and back-propagate its summed bound / x0.numel().

        The caller rescales the averaged gradients by world_size * x0.numel() / (global token count), which turns
        them into the gradient of the per-token mean over the whole global batch whatever the padding.
        `sync=False` skips the gradient reduction (every micro-batch but the last of a step).
        """
        with self._sync(sync):
            with self.autocast():
                loss, nll_sum, num_tokens = self.module(x0, attention_mask, generator, step)
            (loss * (num_tokens / x0.numel())).backward()
        return LossOutput(loss=loss.detach(), nll_sum=nll_sum, num_tokens=num_tokens)

    def _sync(self, sync: bool) -> AbstractContextManager:
        if self.fsdp:
            self.model.set_requires_gradient_sync(sync)
            return nullcontext()
        if isinstance(self.module, nn.parallel.DistributedDataParallel) and not sync:
            return self.module.no_sync()
        return nullcontext()
