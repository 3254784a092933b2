"""Token ids match the checkpoint's vocabulary: WordPiece (tokenizer.json, vocab.txt) and SentencePiece."""
import shutil

import pytest

from data.tokenizer import SentencePieceTokenizer, WordPieceTokenizer, load_tokenizer
from common.errors import UserError

SENTENCES = [
    "i didnt feel humiliated",
    "Café crème, naïve résumé — ÉLAN!",  # accents are stripped by the uncased vocabulary
    "so happy 😀🎉 right now",  # emoji are not in the vocabulary -> [UNK]
    "see https://example.com/a?b=1&c=2 #driverless @someone",
    "日本語のテキストと한국어",  # CJK characters are split one by one
    "",
]


def test_default_tokenizer_matches_transformers(default_model_dir):
    transformers = pytest.importorskip("transformers", reason="transformers is a test-only dependency")
    reference = transformers.AutoTokenizer.from_pretrained(default_model_dir)
    ours = load_tokenizer(default_model_dir)
    expected = [reference(s, add_special_tokens=False)["input_ids"] for s in SENTENCES]
    assert ours.encode_batch(SENTENCES) == expected
    assert (ours.cls_id, ours.sep_id, ours.pad_id, ours.unk_id) == (101, 102, 0, 100)
    assert ours.vocab_size == 30522


def test_default_tokenizer_known_ids(default_model_dir):
    # Fixed ids of bert-base-uncased's vocabulary (which all-MiniLM-L6-v2 uses), so this holds
    # even where transformers is not installed.
    assert load_tokenizer(default_model_dir).encode_batch(["i didnt feel humiliated"])[0] == [1045, 2134, 2102, 2514, 26608]


def test_vocab_txt_alone_gives_the_same_ids_as_tokenizer_json(default_model_dir, tmp_path):
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(default_model_dir / name, tmp_path / name)
    from_vocab = load_tokenizer(tmp_path)
    assert isinstance(from_vocab, WordPieceTokenizer) and not (tmp_path / "tokenizer.json").exists()
    assert from_vocab.encode_batch(SENTENCES) == load_tokenizer(default_model_dir).encode_batch(SENTENCES)


def test_vocab_txt_honours_do_lower_case_false(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "Hello", "hello"]))
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    assert load_tokenizer(tmp_path).encode_batch(["Hello hello"])[0] == [4, 5]


def train_sentencepiece(directory, sentences, **extra):
    spm = pytest.importorskip("sentencepiece")
    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(sentences), encoding="utf-8")
    spm.SentencePieceTrainer.Train(input=str(corpus), model_prefix=str(directory / "spiece"), vocab_size=60,
                                   user_defined_symbols=["[CLS]", "[SEP]", "[PAD]", "[MASK]"],
                                   unk_piece="[UNK]", pad_id=-1, bos_id=-1, eos_id=-1, **extra)
    corpus.unlink()
    (directory / "spiece.vocab").unlink()


KOREAN = ["언니 동생으로 부르는게 맞는 일인가요", "그냥 내 느낌일뿐겠지", "아직너무초기라서 그런거죠",
          "정말 행복한 하루였어요", "너무 화가 나서 참을 수가 없어", "무서워서 잠을 못 자겠어"] * 20


def test_sentencepiece_directory_uses_model_ids(tmp_path):
    import sentencepiece as spm

    train_sentencepiece(tmp_path, KOREAN)
    tok = load_tokenizer(tmp_path)
    assert isinstance(tok, SentencePieceTokenizer)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "spiece.model"))
    assert tok.encode_batch(KOREAN[:6]) == sp.Encode(KOREAN[:6])
    assert (tok.cls_id, tok.sep_id, tok.pad_id, tok.unk_id) == tuple(
        sp.PieceToId(p) for p in ("[CLS]", "[SEP]", "[PAD]", "[UNK]"))


def test_sentencepiece_with_vocab_txt_maps_pieces_through_it(tmp_path):
    import sentencepiece as spm

    train_sentencepiece(tmp_path, KOREAN)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "spiece.model"))
    pieces = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(pieces) - {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
    (tmp_path / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    tok = load_tokenizer(tmp_path)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id) == (0, 1, 2, 3)
    expected = [[vocab.index(p) for p in sp.Encode(s, out_type=str)] for s in KOREAN[:3]]
    assert tok.encode_batch(KOREAN[:3]) == expected


def test_directory_without_tokenizer_files(tmp_path):
    with pytest.raises(UserError, match="no tokenizer files"):
        load_tokenizer(tmp_path)


def test_bpe_tokenizer_json_with_roberta_special_tokens(tmp_path):
    """A byte-level BPE tokenizer.json (RoBERTa/KLUE style): <s>/</s>/<pad>/<unk> found through its
    post-processor and tokenizer_config.json, ids as `tokenizers` gives them."""
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = HFTokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(KOREAN + SENTENCES * 5, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text('{"pad_token": "<pad>", "unk_token": "<unk>"}')
    ours = load_tokenizer(tmp_path)
    assert (ours.cls_id, ours.sep_id, ours.pad_id, ours.unk_id) == (0, 2, 1, 3)
    assert ours.encode_batch(KOREAN[:6]) == [e.ids for e in tok.encode_batch(KOREAN[:6], add_special_tokens=False)]


def test_special_tokens_named_in_tokenizer_config_win_over_spellings(tmp_path, default_model_dir):
    shutil.copy(default_model_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text('{"cls_token": {"content": "[MASK]"}, "sep_token": "[SEP]"}')
    ours = load_tokenizer(tmp_path)
    assert (ours.cls_id, ours.sep_id) == (103, 102)  # bert-base-uncased's [MASK], [SEP]
    (tmp_path / "tokenizer_config.json").write_text('{"cls_token": "<nope>"}')
    with pytest.raises(UserError, match="no cls token .looked for <nope>"):
        load_tokenizer(tmp_path)
