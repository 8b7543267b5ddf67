"""Suite-wide settings. The tests run tiny models (d_model 32-192) whose ops gain nothing from intra-op threads, and
on a shared 2-core runner two contending OpenMP threads make steps up to 20x slower: one thread for the session."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_intra_op_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
