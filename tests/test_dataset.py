"""Dynamic padding per batch and length-grouped, reproducible shuffling."""
import numpy as np

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
