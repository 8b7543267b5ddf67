"""A seeded permutation of range(n) evaluated at any index in O(1) memory (a Feistel network with cycle walking).

Shuffling N blocks with randperm(N) holds N int64s; an OpenWebText-size corpus at L=1024 has ~9M blocks per
epoch and a 1000x larger corpus would not fit. A Feistel network is a bijection on [0, 2^(2h)) for any round
function; restricting it to [0, n) by cycle walking (re-encrypt until the value lands below n) keeps it a
bijection, so each epoch visits every block exactly once while the order is computed from (seed, index) alone.
"""

from __future__ import annotations

import numpy as np

ROUNDS = 6
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a fast, well-mixing bijection of uint64 (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class Permutation:
    """perm(i) for i in [0, n): a bijection of range(n) drawn by `seed`; perm(np.arange(n)) is its whole order."""

    def __init__(self, n: int, seed: int):
        if n < 1:
            raise ValueError(f"a permutation needs n >= 1, got {n}")
        self.n = n
        bits = max(2, int(n - 1).bit_length())
        self.half = (bits + 1) // 2  # the domain [0, 4^half) holds n and is at most 4x larger than n
        self.mask = np.uint64((1 << self.half) - 1)
        with np.errstate(over="ignore"):
            counter = np.uint64(seed % 2**64) * _GOLDEN + np.arange(1, ROUNDS + 1, dtype=np.uint64) * _GOLDEN
            self.keys = _mix(counter)

    def __call__(self, index: np.ndarray) -> np.ndarray:
        """perm(index) elementwise; index: int array with values in [0, n). Returns int64 of the same shape."""
        x = np.asarray(index, dtype=np.uint64).copy()
        todo = np.ones(x.shape, dtype=bool)
        while todo.any():  # cycle walking: expected < 4 rounds since the domain is < 4n
            x[todo] = self._encrypt(x[todo])
            todo = x >= np.uint64(self.n)
        return x.astype(np.int64)

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        shift = np.uint64(self.half)
        left, right = x >> shift, x & self.mask
        with np.errstate(over="ignore"):
            for key in self.keys:
                left, right = right, left ^ (_mix(right ^ key) & self.mask)
        return (left << shift) | right
