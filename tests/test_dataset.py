"""Dynamic padding per batch and length-grouped, reproducible shuffling."""
import numpy as np
import pytest

from data.dataset import ClassificationDataset, LengthGroupedBatchSampler
from data.transform import BERTSentenceTransform
from tests.test_transform import FakeTokenizer, words


def test_collate_pads_to_longest_in_batch_only():
    ds = ClassificationDataset([words(1), words(5), words(2)], [0, 1, 2], BERTSentenceTransform(FakeTokenizer(), 64))
    batch = ds.collate([0, 2])
    assert batch.token_ids.shape == (2, 4)  # longest is 2 words + [CLS] + [SEP]
    assert batch.token_ids.tolist() == [[2, 10, 3, 0], [2, 10, 11, 3]]
    assert batch.valid_length.tolist() == [3, 4] and batch.labels.tolist() == [0, 2]
    assert batch.indices.tolist() == [0, 2]


def test_each_epoch_visits_every_example_once():
    lengths = np.random.default_rng(0).integers(3, 64, size=1003)
    sampler = LengthGroupedBatchSampler(lengths, batch_size=16, shuffle=True, seed=7)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(np.concatenate(batches).tolist()) == list(range(1003))


def test_order_depends_only_on_seed_and_epoch():
    lengths = np.arange(500) % 37
    a, b = (LengthGroupedBatchSampler(lengths, 8, shuffle=True, seed=1) for _ in range(2))
    a.set_epoch(2)
    b.set_epoch(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    b.set_epoch(3)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))


def test_grouping_reduces_padding():
    lengths = np.random.default_rng(1).integers(3, 64, size=4000)

    def padded_tokens(group_by_length):
        sampler = LengthGroupedBatchSampler(lengths, 32, shuffle=True, seed=0, group_by_length=group_by_length)
        return sum(lengths[b].max() * len(b) for b in sampler)

    assert padded_tokens(True) < 0.7 * padded_tokens(False)


def test_evaluation_order_is_sorted_by_length():
    lengths = np.array([5, 1, 4, 2, 3])
    batches = list(LengthGroupedBatchSampler(lengths, 2, shuffle=False))
    assert [b.tolist() for b in batches] == [[1, 3], [4, 2], [0]]


@pytest.mark.parametrize("n, shards, micro", [(1003, 1, 1), (1003, 2, 1), (1003, 2, 4), (1000, 4, 2), (33, 2, 4)])
def test_training_steps_share_every_global_batch_equally(n, shards, micro):
    from data.dataset import TrainingSteps

    lengths = np.random.default_rng(3).integers(3, 64, size=n)
    global_batches = LengthGroupedBatchSampler(lengths, 32, shuffle=True, seed=5)
    per_shard = [TrainingSteps(LengthGroupedBatchSampler(lengths, 32, shuffle=True, seed=5), shards, shard, micro)
                 for shard in range(shards)]
    for sampler in per_shard:
        sampler.set_epoch(2)
    global_batches.set_epoch(2)
    steps = [list(sampler) for sampler in per_shard]
    assert all(len(s) == len(per_shard[0]) for s in steps)  # __len__ is what iteration gives, on every rank
    for step, batch in enumerate(b for b in global_batches if len(b) // shards >= micro):
        shares = [np.concatenate(s[step]) for s in steps]
        assert len({len(share) for share in shares}) == 1  # equal shares: averaging over ranks is exact
        assert all(len(part) > 0 for s in steps for part in s[step]) and len(steps[0][step]) == micro
        taken = np.concatenate(shares)
        assert set(taken) <= set(batch) and len(taken) == len(batch) // shards * shards
    # A resumed epoch starts at the step, without computing the ones before it differently.
    resumed = TrainingSteps(LengthGroupedBatchSampler(lengths, 32, shuffle=True, seed=5), shards, 0, micro)
    resumed.set_epoch(2, first_step=3)
    assert [np.concatenate(s).tolist() for s in resumed] == [np.concatenate(s).tolist() for s in steps[0][3:]]
