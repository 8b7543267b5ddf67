"""Where evaluation runs: the device (CPU when CUDA is asked for but absent) and the CPU intra-op thread count.

Evaluation on CPU is mostly small forwards (lm-eval scores one request at a time); there, intra-op threads mostly
synchronize: on a busy 2-core machine, batch-1 forwards with 2 threads ran 10-17x slower than with 1. So unless the
user says otherwise (an argument, or OMP_NUM_THREADS / MKL_NUM_THREADS in the environment) evaluation on CPU uses
half the cores this process may run on, at most 4 and at least 1, and records the count in its results.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from dlm.registry import ConfigError

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
MAX_DEFAULT_THREADS = 4


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to evaluate on: `device`, or cuda when available, else cpu; a CUDA device without CUDA falls back
    to cpu with a one-line note on stderr (lm-eval passes cuda:0 by default)."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device '{device}'; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"note: {device} was requested but CUDA is not available; evaluating on cpu", file=sys.stderr)
        return torch.device("cpu")
    return device


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1


def cpu_thread_policy(device: torch.device, threads: int = 0) -> dict[str, int | str]:
    """The intra-op thread count evaluation on `device` should use -> {'cpu_threads': n, 'cpu_threads_source': why}.

    threads > 0: that many. 0: an explicit OMP_NUM_THREADS / MKL_NUM_THREADS is kept (torch read it at start);
    else max(1, min(4, cores // 2)). On a GPU the current count is kept. Sets nothing (see cpu_threads).
    """
    if threads < 0:
        raise ConfigError(f"threads must be 0 (automatic) or positive, got {threads}")
    if device.type != "cpu":
        return {"cpu_threads": torch.get_num_threads(), "cpu_threads_source": "unchanged (not on cpu)"}
    if threads:
        return {"cpu_threads": threads, "cpu_threads_source": "argument"}
    if any(os.environ.get(name) for name in THREAD_ENV):
        return {"cpu_threads": torch.get_num_threads(), "cpu_threads_source": "environment"}
    return {"cpu_threads": max(1, min(MAX_DEFAULT_THREADS, available_cores() // 2)), "cpu_threads_source": "default"}


@contextmanager
def cpu_threads(device: torch.device, threads: int | str = 0) -> Iterator[dict[str, int | str]]:
    """Run the enclosed evaluation with cpu_thread_policy's thread count and give the caller's count back after.

    Only the command entry points (`dlm eval ...`, `dlm lm-eval`, `dlm-lm-eval`) use it, around their whole run:
    library code never changes torch's thread count, it records torch.get_num_threads().
    """
    try:
        policy = cpu_thread_policy(device, int(threads))
    except ValueError:
        raise ConfigError(f"threads must be an integer, got {threads!r}") from None
    before = torch.get_num_threads()
    torch.set_num_threads(int(policy["cpu_threads"]))
    try:
        yield policy
    finally:
        torch.set_num_threads(before)


def model_arg(model_args: str, key: str) -> str:
    """The value of `key=value` in an lm-eval model_args string ("" when absent): the entry points read threads
    and device from it, since the harness model never sets process-wide state itself."""
    for item in model_args.split(","):
        name, _, value = item.partition("=")
        if name.strip() == key:
            return value.strip()
    return ""
