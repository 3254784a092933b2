"""A very long text is not tokenized whole (its memory follows the max_len ids kept, not a 50 MB line's
length), and its ids are exactly the whole text's: with every tokenizer kind we load whose words end at spaces,
bare SentencePiece models (unigram and BPE, KoBERT-style) included; the others (a SentencePiece model whose
pieces cross spaces) still tokenize the whole text."""
import re
from pathlib import Path

import pytest

from data.tokenizer import PREFIX_CHARS_PER_ID, SentencePieceTokenizer, encode_up_to, load_tokenizer
from data.transform import BERTSentenceTransform
from tests.tokenizer_dirs import KINDS, dataset_sentences, kobert_style_directory, tokenizer_directories

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
    assert_kept_ids_are_the_whole_texts(load_tokenizer(directories[name]), long_texts)


def assert_kept_ids_are_the_whole_texts(tokenizer, long_texts):
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
    # DeBERTa's spm.model converted as transformers converts it: whitespace folded to one space, stripped at the end
    assert load_tokenizer(directories["deberta_v3_spm_model"]).words_end_at_spaces


# KoBERT-style SentencePiece models (trainer options) whose words end at spaces, and two whose pieces cross them.
SENTENCEPIECE_CUT_AT_SPACES = {
    "unigram": {}, "bpe": {"model_type": "bpe"},
    "unigram_extra_whitespace_kept": {"remove_extra_whitespaces": False},
    "bpe_extra_whitespace_kept": {"model_type": "bpe", "remove_extra_whitespaces": False},
    "unigram_nfkc_cf": {"normalization_rule_name": "nfkc_cf"}, "bpe_identity": {"model_type": "bpe",
                                                                                "normalization_rule_name": "identity"}}
SENTENCEPIECE_WHOLE = {"unigram_across_spaces": {"split_by_whitespace": False},
                       "bpe_space_as_suffix": {"model_type": "bpe", "treat_whitespace_as_suffix": True}}
# Whitespace runs the normalizer folds (or, remove_extra_whitespaces=false, keeps), leading ones included.
WHITESPACE_RUNS = [" ", "   ", "\t", " \t ", "\n", "\n\n  ", "\r\n", "\u3000", "\u00a0 "]


@pytest.fixture(scope="module")
def spaced_texts(shared_datasets) -> list[str]:
    english, korean = dataset_sentences(shared_datasets, n=200)

    def spaced(words):
        return "  \t " + "".join(w + WHITESPACE_RUNS[i % len(WHITESPACE_RUNS)] for i, w in enumerate(words))

    korean_words, english_words = " ".join(korean).split(), " ".join(english).split()
    return [spaced(korean_words), spaced(english_words), spaced([w for pair in zip(korean_words, english_words)
                                                                for w in pair])]


@pytest.fixture(scope="module")
def sentencepiece_directories(shared_datasets, tmp_path_factory) -> dict[tuple[str, bool], Path]:
    """(trainer options' name, with a vocab.txt) -> a KoBERT-style directory: skt's own ids, or monologg's
    vocab.txt (here the pieces in reverse order, so its ids are not the model's)."""
    import sentencepiece as spm

    english, korean = dataset_sentences(shared_datasets)
    directories = {}
    for name, options in {**SENTENCEPIECE_CUT_AT_SPACES, **SENTENCEPIECE_WHOLE}.items():
        bare = kobert_style_directory(english + korean, tmp_path_factory.mktemp(name), **options)
        with_vocab = tmp_path_factory.mktemp(f"{name}_vocab_txt")
        (with_vocab / "spiece.model").write_bytes((bare / "spiece.model").read_bytes())
        sp = spm.SentencePieceProcessor(model_file=str(bare / "spiece.model"))
        pieces = [sp.IdToPiece(i) for i in reversed(range(sp.GetPieceSize()))]
        (with_vocab / "vocab.txt").write_text("\n".join(pieces) + "\n", encoding="utf-8")
        directories[name, False], directories[name, True] = bare, with_vocab
    return directories


@pytest.mark.parametrize("vocab_txt", [False, True], ids=["model_ids", "vocab_txt"])
@pytest.mark.parametrize("name", SENTENCEPIECE_CUT_AT_SPACES)
def test_sentencepiece_models_keep_the_whole_texts_ids_from_a_prefix(
        sentencepiece_directories, long_texts, spaced_texts, name, vocab_txt):
    tokenizer = load_tokenizer(sentencepiece_directories[name, vocab_txt])
    assert isinstance(tokenizer, SentencePieceTokenizer) and tokenizer.words_end_at_spaces
    assert_kept_ids_are_the_whole_texts(tokenizer, long_texts + spaced_texts)


@pytest.mark.parametrize("name", [*SENTENCEPIECE_CUT_AT_SPACES, "unigram_across_spaces"])
def test_sentencepiece_ids_of_every_prefix_cut_before_a_space_begin_the_whole_texts_exactly_where_flagged(
        shared_datasets, sentencepiece_directories, spaced_texts, name):
    # encode_up_to keeps ids far from the cut; here the cut's neighbourhood itself is compared, at every space
    # of plain sentences (whose "▁i▁feel" pieces a model trained across spaces has learnt) and of spaced ones.
    tokenizer = load_tokenizer(sentencepiece_directories[name, False])
    english, _ = dataset_sentences(shared_datasets, n=200)
    text = " ".join(english)[:1500] + spaced_texts[2][:1500]
    whole = tokenizer.encode_batch([text])[0]
    cuts = [m.start() for m in re.finditer(r"(?<=[^ ]) ", text)]
    exact = [ids == whole[:len(ids)] for ids in tokenizer.encode_batch([text[:cut] for cut in cuts])]
    assert all(exact) == tokenizer.words_end_at_spaces


@pytest.mark.parametrize("name", SENTENCEPIECE_WHOLE)
def test_sentencepiece_models_whose_pieces_cross_spaces_tokenize_the_whole_text(
        sentencepiece_directories, spaced_texts, name):
    tokenizer = load_tokenizer(sentencepiece_directories[name, False])
    assert not tokenizer.words_end_at_spaces
    assert_kept_ids_are_the_whole_texts(tokenizer, spaced_texts)


@pytest.mark.parametrize("name", ["deberta_v3_spm_model", "deberta_v3_json", "xlmr_unigram_json", "klue_vocab_txt"])
def test_tabs_newlines_and_runs_of_spaces_keep_the_whole_texts_ids(directories, spaced_texts, name):
    assert_kept_ids_are_the_whole_texts(load_tokenizer(directories[name]), spaced_texts)


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
