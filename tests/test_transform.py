"""BERTSentenceTransform: [CLS]/[SEP], segments, truncation (pairs longest-first); no padding (the collate's)."""
import numpy as np
import pytest

from data.transform import BERTSentenceTransform, truncated_pair_lengths


class FakeTokenizer:
    """Word i -> id 10+i; enough to check framing without any vocabulary."""
    cls_id, sep_id, pad_id, unk_id = 2, 3, 0, 1

    def encode_batch(self, texts):
        return [[10 + int(w) for w in t.split()] for t in texts]


def words(n, start=0):
    return " ".join(str(i) for i in range(start, start + n))


def encode_one(transform, *texts):
    """(token_ids, valid_length, segment_ids) of one example (a text, or a pair)."""
    enc = transform.encode([texts[0]], [texts[1]] if transform.pair else None)
    return enc.token_ids[0], int(enc.valid_length[0]), enc.segment_ids[0]


def test_single_sentence_framing():
    token_ids, valid_length, segment_ids = encode_one(BERTSentenceTransform(FakeTokenizer(), max_len=8), words(3))
    assert token_ids.tolist() == [2, 10, 11, 12, 3]
    assert valid_length == 5 and segment_ids.tolist() == [0] * 5


def test_single_sentence_truncated_and_not_padded():
    t = BERTSentenceTransform(FakeTokenizer(), max_len=6)
    token_ids, valid_length, segment_ids = encode_one(t, words(10))
    assert token_ids.tolist() == [2, 10, 11, 12, 13, 3] and valid_length == 6
    token_ids, valid_length, _ = encode_one(t, words(1))
    assert token_ids.tolist() == [2, 10, 3] and valid_length == 3


def test_pair_segments():
    t = BERTSentenceTransform(FakeTokenizer(), max_len=10, pair=True)
    token_ids, valid_length, segment_ids = encode_one(t, words(2), words(3, 5))
    assert token_ids.tolist() == [2, 10, 11, 3, 15, 16, 17, 3]
    assert segment_ids.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert valid_length == 8


def reference_longest_first(len_a, len_b, budget):
    """transformers' (the Rust `tokenizers`') longest-first, as written in tokenizers/src/utils/truncation.rs:
    with n1 <= n2, n2 -> max(n1, budget - n1); if still too long, both -> budget / 2, the rest to n2."""
    if len_a + len_b <= budget:
        return len_a, len_b
    swap = len_a > len_b
    n1, n2 = (len_b, len_a) if swap else (len_a, len_b)
    n2 = n1 if n1 > budget else max(n1, budget - n1)
    if n1 + n2 > budget:
        n1 = budget // 2
        n2 = n1 + budget % 2
    return (n2, n1) if swap else (n1, n2)


@pytest.mark.parametrize("budget", [1, 2, 5, 8, 61])
def test_pair_truncation_equals_longest_first_loop(budget):
    for len_a in range(0, 40, 3):
        for len_b in range(0, 40, 4):
            assert truncated_pair_lengths(len_a, len_b, budget) == reference_longest_first(len_a, len_b, budget)


def test_batch_encoding_counts_truncations():
    t = BERTSentenceTransform(FakeTokenizer(), max_len=5)
    enc = t.encode([words(2), words(3), words(4), ""])
    assert enc.valid_length.tolist() == [4, 5, 5, 2] and enc.n_truncated == 1
    assert all(ids.dtype == np.int32 for ids in enc.token_ids)
