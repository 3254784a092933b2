"""A very long text is not tokenized whole (its memory follows the max_len ids kept, not a 50 MB line's
length), and its ids are exactly the whole text's: with every tokenizer kind we load whose words end at spaces;
the others (a bare SentencePiece model) still tokenize the whole text."""
from pathlib import Path

import pytest

from data.tokenizer import PREFIX_CHARS_PER_ID, encode_up_to, load_tokenizer
from data.transform import BERTSentenceTransform
from tests.tokenizer_dirs import KINDS, dataset_sentences, tokenizer_directories

KEEP = 16


@pytest.fixture(scope="module")
def long_texts(shared_datasets) -> list[str]:
    english, korean = dataset_sentences(shared_datasets, n=200)
    return [" ".join(english), " ".join(korean), "x" * 3000 + " " + " ".join(english),  # no space to cut at first
            "  ".join(korean)]  # runs of two spaces


@pytest.fixture(scope="module")
def directories(shared_datasets, default_model_dir) -> dict[str, Path]:
    from common.e5_encoder import converted_e5_directory

    return {**tokenizer_directories(shared_datasets), "e5": Path(converted_e5_directory()),
            "minilm": default_model_dir}


@pytest.mark.parametrize("name", [*KINDS, "e5", "minilm"])
def test_kept_ids_equal_the_whole_texts_and_a_prefix_is_all_that_is_tokenized(directories, long_texts, name):
    tokenizer = load_tokenizer(directories[name])
    assert all(len(t) > PREFIX_CHARS_PER_ID * KEEP for t in long_texts)
    whole = tokenizer.encode_batch(long_texts)
    seen = []
    encode = tokenizer._encode_batch
    tokenizer._encode_batch = lambda texts: seen.extend(map(len, texts)) or encode(texts)
    kept = encode_up_to(tokenizer, long_texts, KEEP)
    for ids, reference in zip(kept, whole):
        assert len(ids) > KEEP and ids[:KEEP] == reference[:KEEP]
    if tokenizer.words_end_at_spaces:  # the texts are 20-60k characters; prefixes of ~1-4k were tokenized
        assert max(seen) < 8 * PREFIX_CHARS_PER_ID * KEEP
    else:
        assert max(seen) == max(map(len, long_texts))


def test_byte_level_bpe_and_unigram_files_are_cut_at_spaces(directories):
    assert load_tokenizer(directories["roberta_bpe_json"]).words_end_at_spaces
    assert load_tokenizer(directories["xlmr_unigram_json"]).words_end_at_spaces
    assert load_tokenizer(directories["klue_vocab_txt"]).words_end_at_spaces


def test_pairs_of_two_long_texts_truncate_as_whole_texts_do(directories, long_texts):
    tokenizer = load_tokenizer(directories["roberta_bpe_json"])
    transform = BERTSentenceTransform(tokenizer, KEEP + 1, pair=True, framing="roberta")  # an odd budget
    a, b = long_texts[0], long_texts[0] + " and more"  # b is the longer: it gets the odd id
    encoded = transform.encode([a, b], [b, a])
    whole = tokenizer.encode_batch([a, b])
    budget = KEEP + 1 - 4
    long_half, short_half = budget - budget // 2, budget // 2
    assert list(encoded.token_ids[0][1:1 + short_half]) == whole[0][:short_half]
    assert list(encoded.token_ids[1][1:1 + long_half]) == whole[1][:long_half]
    assert encoded.n_truncated == 2
