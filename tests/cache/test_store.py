"""KVStore: scattered writes land at their positions, scratch writes go nowhere visible, growth keeps contents."""

import torch

from dlm.cache import KVStore, gather_index


def test_write_read_scratch_and_growth():
    store = KVStore()
    store.reserve(2, 4, torch.device("cpu"))
    full = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    store.write(0, full, -full)
    index = torch.tensor([[1, 4], [3, 0]])  # 4 = the scratch slot
    fresh = torch.full((2, 3, 2, 5), 7.0)
    store.write(0, fresh, -fresh, index)
    keys, values = store.read(0, 4)
    expected = full.clone()
    expected[0, :, 1] = 7.0
    expected[1, :, 3] = 7.0
    expected[1, :, 0] = 7.0
    assert torch.equal(keys, expected) and torch.equal(values, -expected)
    store.valid[:, :2] = True
    store.reserve(2, 6, torch.device("cpu"))
    assert store.capacity == 6 and torch.equal(store.read(0, 4)[0], expected)
    assert store.valid[:, :2].all() and not store.valid[:, 2:].any()
    store.reserve(3, 6, torch.device("cpu"))  # another batch starts empty
    assert store.keys == {} and not store.valid.any()


def test_gather_index_pads_rows_with_the_scratch_slot():
    recompute = torch.tensor([[False, True, False, True], [True, True, True, False], [False] * 4])
    assert gather_index(recompute, scratch=4).tolist() == [[1, 3, 4], [0, 1, 2], [4, 4, 4]]
