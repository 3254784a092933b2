"""Every BERT-family tokenizer as checkpoints ship it gives transformers' AutoTokenizer input_ids, for single
texts and pairs, once framed by BERTSentenceTransform with the framing of the checkpoint's model_type."""
import pytest

from common.errors import UserError
from data.tokenizer import TokenizerJson, WordPieceTokenizer, load_tokenizer
from data.transform import BERTSentenceTransform, framing_of
from tests.tokenizer_dirs import KINDS, dataset_sentences, tokenizer_directories

transformers = pytest.importorskip("transformers", reason="transformers is a test-only dependency")
MAX_LEN, PAIR_MAX_LEN = 32, 48  # short enough that many texts and pairs are truncated


@pytest.fixture(scope="module")
def directories(shared_datasets):
    return tokenizer_directories(shared_datasets)


@pytest.fixture(scope="module")
def sentences(shared_datasets):
    english, korean = dataset_sentences(shared_datasets)
    return english + korean


@pytest.mark.parametrize("name", KINDS)
def test_ids_equal_autotokenizer_for_texts_and_pairs(directories, sentences, name):
    model_type, framing = KINDS[name]
    reference = transformers.AutoTokenizer.from_pretrained(directories[name])
    ours = load_tokenizer(directories[name])
    assert framing_of(model_type, ours) == framing

    single = BERTSentenceTransform(ours, MAX_LEN, framing=framing).encode(sentences)
    expected = reference(sentences, truncation=True, max_length=MAX_LEN)
    assert [ids.tolist() for ids in single.token_ids] == expected["input_ids"]
    assert single.n_truncated > 0

    # English first text, Korean second (and the other way round): lengths of every ratio.
    texts_a, texts_b = sentences, sentences[::-1]
    pairs = BERTSentenceTransform(ours, PAIR_MAX_LEN, pair=True, framing=framing).encode(texts_a, texts_b)
    expected = reference(texts_a, texts_b, truncation=True, max_length=PAIR_MAX_LEN)
    assert [ids.tolist() for ids in pairs.token_ids] == expected["input_ids"]
    assert pairs.n_truncated > 0
    if framing == "bert" and "token_type_ids" in expected:
        assert [s.tolist() for s in pairs.segment_ids] == expected["token_type_ids"]
    if framing != "bert":  # RoBERTa-family models have one token type
        assert not any(s.any() for s in pairs.segment_ids)


def test_special_token_ids_come_from_the_files(directories):
    roberta_specials = load_tokenizer(directories["klue_vocab_txt_roberta_specials"])
    assert isinstance(roberta_specials, WordPieceTokenizer)
    assert (roberta_specials.cls_id, roberta_specials.sep_id, roberta_specials.pad_id, roberta_specials.unk_id) == (2, 3, 0, 1)
    xlmr = load_tokenizer(directories["xlmr_sentencepiece_model"])
    assert isinstance(xlmr, TokenizerJson)  # converted as transformers converts it
    assert (xlmr.cls_id, xlmr.pad_id, xlmr.sep_id, xlmr.unk_id) == (0, 1, 2, 3)
    # fairseq: SentencePiece's 1,000 pieces shifted by one (its <unk>, <s>, </s> replaced), then <mask>.
    assert xlmr.token_to_id("<mask>") == xlmr.vocab_size - 1 == 1001


def test_xlmr_sentencepiece_model_and_its_tokenizer_json_agree(directories, sentences):
    from_model = load_tokenizer(directories["xlmr_sentencepiece_model"])
    from_json = load_tokenizer(directories["xlmr_unigram_json"])
    assert from_model.encode_batch(sentences) == from_json.encode_batch(sentences)
    assert from_model.vocab_size == from_json.vocab_size


def test_deberta_spm_model_is_converted_as_transformers_converts_it(directories, sentences):
    from_model = load_tokenizer(directories["deberta_v3_spm_model"])
    assert isinstance(from_model, TokenizerJson)
    assert (from_model.pad_id, from_model.cls_id, from_model.sep_id, from_model.unk_id) == (0, 1, 2, 3)
    assert from_model.token_to_id("[MASK]") == from_model.vocab_size - 1 == 1000  # after SentencePiece's 1,000
    assert from_model.encode_batch(sentences) == load_tokenizer(directories["deberta_v3_json"]).encode_batch(sentences)


def test_sentencepiece_model_of_a_roberta_checkpoint_needs_its_class(directories, tmp_path):
    """The same .model with config.json saying xlm-roberta and no tokenizer_config.json: still fairseq's ids."""
    (tmp_path / "sentencepiece.bpe.model").write_bytes(
        (directories["xlmr_sentencepiece_model"] / "sentencepiece.bpe.model").read_bytes())
    (tmp_path / "config.json").write_text('{"model_type": "xlm-roberta"}')
    assert load_tokenizer(tmp_path).unk_id == 3
    (tmp_path / "config.json").write_text('{"model_type": "camembert"}')
    with pytest.raises(UserError, match="CamemBERT's SentencePiece numbering is not supported") as e:
        load_tokenizer(tmp_path)
    assert "\n" not in str(e.value)


def test_framing_of_model_types():
    assert [framing_of(t) for t in ("bert", "distilbert", "electra", "deberta-v2")] == ["bert"] * 4
    assert [framing_of(t) for t in ("roberta", "xlm-roberta", "camembert")] == ["roberta"] * 3
    with pytest.raises(UserError, match="no input framing is known for model_type 'gpt2'"):
        framing_of("gpt2")


class WordTokenizer:
    """Word i -> id 10+i, RoBERTa's special ids."""
    cls_id, sep_id, pad_id, unk_id = 0, 2, 1, 3

    def encode_batch(self, texts):
        return [[10 + int(w) for w in t.split()] for t in texts]


def test_roberta_pair_framing_and_its_budget():
    t = BERTSentenceTransform(WordTokenizer(), max_len=9, pair=True, framing="roberta")
    enc = t.encode(["0 1 2 3"], ["5 6 7"])
    assert enc.token_ids[0].tolist() == [0, 10, 11, 12, 2, 2, 15, 16, 2]  # budget 9 - 4: a keeps 3, b 2
    assert enc.segment_ids[0].tolist() == [0] * 9 and enc.n_truncated == 1
    single = BERTSentenceTransform(WordTokenizer(), max_len=4, framing="roberta").encode(["0 1 2"])
    assert single.token_ids[0].tolist() == [0, 10, 11, 2]
    with pytest.raises(UserError, match="data.max_len=4 leaves no room .* roberta-framed pair: set it to at least 5"):
        BERTSentenceTransform(WordTokenizer(), max_len=4, pair=True, framing="roberta")
