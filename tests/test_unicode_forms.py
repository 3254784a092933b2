"""The same Korean sentence in NFC (Windows, most files) and NFD (macOS file names, text copied from them)
gives the same token ids with every tokenizer kind we ship or load (issue 24, item 3)."""
import unicodedata
from pathlib import Path

import pytest

from data.tokenizer import load_tokenizer
from data.transform import BERTSentenceTransform
from tests.tokenizer_dirs import KINDS, dataset_sentences, kobert_style_directory, tokenizer_directories

# Kinds whose own normaliser leaves decomposed Hangul jamo as they are: without our NFC, NFD text would
# get other ids (byte-level BPE, cased WordPiece, and the Precompiled SentencePiece maps of XLM-R and e5).
NOT_NORMALISED_BY_THEMSELVES = {"roberta_bpe_json", "klue_vocab_txt", "klue_vocab_txt_roberta_specials",
                                "xlmr_unigram_json", "xlmr_sentencepiece_model", "e5",
                                "modernbert_bpe_json"}  # byte-level BPE, as roberta_bpe_json


@pytest.fixture(scope="module")
def korean(shared_datasets) -> list[str]:
    _, korean = dataset_sentences(shared_datasets, n=200)
    assert all(unicodedata.is_normalized("NFC", t) for t in korean)
    return korean + ["Café naïve 정말 행복한 하루였어요"]  # Latin accents decompose too


@pytest.fixture(scope="module")
def directories(shared_datasets, default_model_dir, korean, tmp_path_factory) -> dict[str, Path]:
    from common.e5_encoder import converted_e5_directory

    kobert = kobert_style_directory(korean, tmp_path_factory.mktemp("kobert_style"))
    return {**tokenizer_directories(shared_datasets), "e5": Path(converted_e5_directory()),
            "minilm_uncased_wordpiece_json": default_model_dir, "kobert_sentencepiece": kobert}


@pytest.mark.parametrize("name", [*KINDS, "e5", "minilm_uncased_wordpiece_json", "kobert_sentencepiece"])
def test_nfc_and_nfd_give_the_same_ids(directories, korean, name):
    decomposed = [unicodedata.normalize("NFD", t) for t in korean]
    assert sum(a != b for a, b in zip(korean, decomposed)) >= len(korean) - 5  # almost every text has Hangul
    tokenizer = load_tokenizer(directories[name])
    assert tokenizer.encode_batch(decomposed) == tokenizer.encode_batch(korean)
    # Where the tokenizer does not normalise by itself, it is our NFC that makes the two the same.
    without_ours = tokenizer._encode_batch(decomposed) == tokenizer._encode_batch(korean)
    assert without_ours == (name not in NOT_NORMALISED_BY_THEMSELVES)


def test_pairs_through_the_transform_do_not_depend_on_the_form(directories, korean):
    transform = BERTSentenceTransform(load_tokenizer(directories["roberta_bpe_json"]), 40, pair=True,
                                      framing="roberta")
    nfd = [unicodedata.normalize("NFD", t) for t in korean]
    composed, decomposed = transform.encode(korean, korean[::-1]), transform.encode(nfd, nfd[::-1])
    assert [a.tolist() for a in composed.token_ids] == [b.tolist() for b in decomposed.token_ids]
    assert composed.n_truncated == decomposed.n_truncated
