"""IDX and .mat readers: a synthetic IDX file round-trips exactly; the staged datasets have their known headers
(shapes) and label counts."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from dlm.image.datasets import load_images
from dlm.image.idx import read_idx
from dlm.registry import ConfigError
from tests.image.conftest import needs_data

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # the published per-digit counts
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_idx_round_trip_and_errors(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 3, 4) + array.tobytes()
    (tmp_path / "a-idx3-ubyte").write_bytes(raw)
    with gzip.open(tmp_path / "a-idx3-ubyte.gz", "wb") as handle:
        handle.write(raw)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), array)
    ints = np.array([-1, 7, 70000], dtype=">i4")
    (tmp_path / "i.idx").write_bytes(bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + ints.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "i.idx"), [-1, 7, 70000])
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(ConfigError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "bad").write_bytes(b"PK\x03\x04" + raw[4:])
    with pytest.raises(ConfigError, match="not an IDX"):
        read_idx(tmp_path / "bad")


@needs_data("mnist")
def test_mnist_headers_and_label_counts():
    test, train = load_images("mnist", "test"), load_images("mnist", "train")
    assert tuple(test.images.shape) == (10000, 1, 28, 28) and tuple(train.images.shape) == (60000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == MNIST_TEST_COUNTS
    assert torch.bincount(train.labels).tolist() == MNIST_TRAIN_COUNTS
    assert test.caption(7) == "a handwritten seven"
    with pytest.raises(ConfigError, match="train and test"):
        load_images("mnist", "valid")


@needs_data("fashion-mnist")
def test_fashion_mnist_is_balanced():
    assert torch.bincount(load_images("fashion-mnist", "test").labels).tolist() == [1000] * 10
    assert torch.bincount(load_images("fashion-mnist", "train").labels).tolist() == [6000] * 10


@needs_data("binarized-mnist")
@needs_data("mnist")
def test_binarized_mnist_mat():
    pytest.importorskip("scipy", reason="the .mat reader needs scipy")
    sizes = {"train": 50000, "valid": 10000, "test": 10000}
    for split, n in sizes.items():
        images = load_images("binarized-mnist", split)
        assert tuple(images.images.shape) == (n, 1, 28, 28)
        assert set(images.images.unique().tolist()) == {0, 255}
    test = load_images("binarized-mnist", "test")
    assert torch.bincount(test.labels).tolist() == MNIST_TEST_COUNTS
    assert bool((test.labels[1:] >= test.labels[:-1]).all())  # sorted by label
