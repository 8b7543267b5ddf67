"""Suite-wide settings.

- One intra-op thread: the tests run tiny models (d_model 32-192) whose ops gain nothing from threads, and on a
  shared 2-core runner two contending OpenMP threads make steps up to 20x slower.
- No network: the Hugging Face hub is put in offline mode before anything imports it (so a missing local file
  fails at once instead of retrying for a minute), and any socket connection beyond this machine raises.
  Tests that need the local data dir (../shared/data or $DLM_DATA_DIR) skip with a reason when it is missing.
"""

import ipaddress
import os
import socket
from pathlib import Path

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # inherited by subprocesses (CLI tests, torchrun) too
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

_connect = socket.socket.connect


def _local_only(sock: socket.socket, address) -> None:
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and not _is_local(host):
        raise OSError(f"the test suite must not use the network (tried to connect to {host})")
    _connect(sock, address)


def _is_local(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: would need DNS, i.e. the network
        return False


socket.socket.connect = _local_only


@pytest.fixture(autouse=True, scope="session")
def _single_intra_op_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared_file():
    """shared_file('ptb/ptb.valid.txt') -> Path under the local data dir, or skip the test when it is missing."""
    from dlm.data.paths import data_dir

    def find(relative: str) -> Path:
        path = data_dir() / relative
        if not path.is_file():
            pytest.skip(f"local data file {path} is not present")
        return path

    return find
