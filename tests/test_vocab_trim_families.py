"""model.trim_vocab on the vocabularies BERT-family checkpoints ship: XLM-R's Unigram (tokenizer.json, or
its sentencepiece.bpe.model converted) is trimmed exactly, as transformers then reads it back; byte-level
BPE, WordPiece and KoBERT-style SentencePiece are refused in one line."""
import pytest

from common.errors import UserError
from data.tokenizer import load_tokenizer
from data.transform import BERTSentenceTransform
from data.vocab_trim import trimmed_tokenizer
from tests.tokenizer_dirs import dataset_sentences, kobert_style_directory, tokenizer_directories

transformers = pytest.importorskip("transformers", reason="transformers is a test-only dependency")


@pytest.fixture(scope="module")
def directories(shared_datasets):
    return tokenizer_directories(shared_datasets)


@pytest.fixture(scope="module")
def training_texts(shared_datasets):
    english, korean = dataset_sentences(shared_datasets, n=100)
    return english + korean


def test_xlmr_tokenizer_json_trimmed_reads_back_in_transformers(directories, training_texts, tmp_path):
    full = load_tokenizer(directories["xlmr_unigram_json"])
    trimmed, kept = trimmed_tokenizer(full, training_texts)
    assert len(kept) < full.vocab_size and trimmed.vocab_size == len(kept)
    assert [[kept[i] for i in ids] for ids in trimmed.encode_batch(training_texts)] == full.encode_batch(training_texts)
    assert kept[trimmed.token_to_id("<mask>")] == full.token_to_id("<mask>")
    trimmed.save(tmp_path)
    reference = transformers.AutoTokenizer.from_pretrained(tmp_path)
    pairs = BERTSentenceTransform(trimmed, 40, pair=True, framing="roberta").encode(training_texts, training_texts[::-1])
    expected = reference(training_texts, training_texts[::-1], truncation=True, max_length=40)["input_ids"]
    assert [ids.tolist() for ids in pairs.token_ids] == expected


def test_xlmr_sentencepiece_model_trims_as_its_tokenizer_json(directories, training_texts):
    _, kept_from_json = trimmed_tokenizer(load_tokenizer(directories["xlmr_unigram_json"]), training_texts)
    _, kept_from_model = trimmed_tokenizer(load_tokenizer(directories["xlmr_sentencepiece_model"]), training_texts)
    assert kept_from_model == kept_from_json


@pytest.mark.parametrize("name, kind", [("roberta_bpe_json", "BPE"), ("distilbert_json", "WordPiece"),
                                        ("klue_vocab_txt", "WordPieceTokenizer")])
def test_vocabularies_that_cannot_be_trimmed_exactly_are_refused(directories, training_texts, name, kind):
    with pytest.raises(UserError, match=f"needs a Unigram tokenizer.json .* has {kind}: set model.trim_vocab=false") as e:
        trimmed_tokenizer(load_tokenizer(directories[name]), training_texts)
    assert "\n" not in str(e.value)


def test_kobert_style_sentencepiece_is_refused(training_texts, tmp_path):
    with pytest.raises(UserError, match="has SentencePieceTokenizer: set model.trim_vocab=false"):
        trimmed_tokenizer(load_tokenizer(kobert_style_directory(training_texts, tmp_path)), training_texts)
