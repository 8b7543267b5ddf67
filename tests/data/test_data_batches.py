from __future__ import annotations

from itertools import chain, islice

import pytest
import torch

from dlm.data import TokenBatches
from dlm.registry import ConfigError

N, L = 20, 3


def rows(n: int = N) -> torch.Tensor:
    """Row i is [i, i, i], so a batch's first column names its rows."""
    return torch.arange(n).repeat_interleave(L).view(n, L)


def take(batches: TokenBatches, k: int) -> list[list[int]]:
    return [b["input_ids"][:, 0].tolist() for b in islice(batches, k)]


def test_same_seed_same_order_across_epochs():
    first = take(TokenBatches(rows(), batch_size=4, seed=7), 12)  # 5 batches per epoch: crosses two epochs
    assert first == take(TokenBatches(rows(), batch_size=4, seed=7), 12)
    assert first != take(TokenBatches(rows(), batch_size=4, seed=8), 12)


def test_each_epoch_is_a_permutation_and_epochs_differ():
    batches = take(TokenBatches(rows(), batch_size=4, seed=0), 10)
    epoch0, epoch1 = list(chain(*batches[:5])), list(chain(*batches[5:]))
    assert sorted(epoch0) == sorted(epoch1) == list(range(N))
    assert epoch0 != epoch1
    expected = torch.randperm(N, generator=torch.Generator().manual_seed(0)).tolist()
    assert epoch0 == expected


def test_last_partial_training_batch_is_dropped():
    batches = TokenBatches(rows(22), batch_size=4, seed=0)
    assert len(batches) == 5
    assert all(len(b) == 4 for b in take(batches, 11))


@pytest.mark.parametrize("k", [0, 3, 5, 7])
def test_resume_continues_exactly(k):
    reference = take(TokenBatches(rows(), batch_size=4, seed=3), 13)
    interrupted = TokenBatches(rows(), batch_size=4, seed=3)
    assert take(interrupted, k) == reference[:k]
    state = interrupted.state_dict()
    resumed = TokenBatches(rows(), batch_size=4, seed=3)
    resumed.load_state_dict(state)
    assert take(resumed, 13 - k) == reference[k:]


def test_state_counts_yielded_batches():
    batches = TokenBatches(rows(), batch_size=4, seed=0)
    take(batches, 7)
    assert batches.state_dict() == {"epoch": 1, "index": 2}


def test_rank_slices_partition_the_global_batch():
    whole = take(TokenBatches(rows(), batch_size=4, seed=5), 8)
    rank0 = take(TokenBatches(rows(), batch_size=4, seed=5, rank=0, world_size=2), 8)
    rank1 = take(TokenBatches(rows(), batch_size=4, seed=5, rank=1, world_size=2), 8)
    for full, a, b in zip(whole, rank0, rank1, strict=True):
        assert len(a) == len(b) == 2
        assert sorted(a + b) == sorted(full)
        assert a == full[0::2] and b == full[1::2]


def test_masks_pass_through_or_default_to_all_true():
    mask = torch.rand(N, L, generator=torch.Generator().manual_seed(0)) > 0.5
    for batch in islice(TokenBatches(rows(), mask, batch_size=4, seed=1), 5):
        assert torch.equal(batch["attention_mask"], mask[batch["input_ids"][:, 0]])
    batch = next(iter(TokenBatches(rows(), None, batch_size=4)))
    assert batch["attention_mask"].dtype == torch.bool and batch["attention_mask"].all()


def test_validation_is_one_ordered_pass_with_partial_tail():
    batches = TokenBatches(rows(10), batch_size=4, shuffle=False)
    assert len(batches) == 3
    assert take(batches, 99) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert take(batches, 99) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # every iteration is a fresh full pass


def test_validation_tail_is_padded_with_masked_rows_across_ranks():
    shards = [list(TokenBatches(rows(9), batch_size=4, shuffle=False, rank=r, world_size=4)) for r in range(4)]
    assert all(len(s) == 3 for s in shards)  # every rank sees the same number of batches
    tails = [s[-1] for s in shards]
    assert all(len(t["input_ids"]) == 1 for t in tails)
    real = [t["input_ids"][0, 0].item() for t in tails if t["attention_mask"].all()]
    assert real == [8]
    assert sum(int(t["attention_mask"].any()) for t in tails) == 1  # the padding rows hold no tokens


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="multiple of world size"):
        TokenBatches(rows(), batch_size=3, world_size=2)
    with pytest.raises(ConfigError, match="fewer than"):
        TokenBatches(rows(3), batch_size=4)
    with pytest.raises(ConfigError, match="rank"):
        TokenBatches(rows(), batch_size=4, rank=2, world_size=2)
