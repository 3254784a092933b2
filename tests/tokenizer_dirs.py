"""Tiny tokenizer directories of every BERT-family kind, trained offline on English and Korean sentences
of ../shared/datasets and saved the way transformers saves them (test-only use of transformers).

name -> (directory, config.json's model_type, the framing data.transform.framing_of must give)."""
import functools
import io
import json
import shutil
import tempfile
from pathlib import Path

SPECIALS_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SPECIALS_ROBERTA = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
KINDS = {  # name -> (model_type, framing)
    "roberta_bpe_json": ("roberta", "roberta"),
    "klue_wordpiece_json": ("roberta", "bert_one_segment"),
    "klue_vocab_txt": ("roberta", "bert_one_segment"),
    "klue_vocab_txt_roberta_specials": ("roberta", "bert_one_segment"),
    "xlmr_unigram_json": ("xlm-roberta", "roberta"),
    "xlmr_sentencepiece_model": ("xlm-roberta", "roberta"),
    "distilbert_json": ("distilbert", "bert"),
    "distilbert_vocab_txt": ("distilbert", "bert"),
    "electra_json": ("electra", "bert"),
    "electra_vocab_txt": ("electra", "bert"),
    "modernbert_bpe_json": ("modernbert", "bert_one_segment"),
    "deberta_v3_spm_model": ("deberta-v2", "bert"),
    "deberta_v3_json": ("deberta-v2", "bert"),
}


def read_texts(path: Path, n: int) -> list[str]:
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
    return texts[::max(1, len(texts) // n)][:n]


def dataset_sentences(shared: Path, n: int = 300) -> tuple[list[str], list[str]]:
    """(English, Korean): n of each, spread over the files (emotion's train split, all of korean_emotion)."""
    return read_texts(shared / "emotion" / "train.jsonl", n), read_texts(shared / "korean_emotion" / "all.jsonl", n)


def wordpiece_vocab(texts: list[str], specials: list[str]) -> list[str]:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token=specials[1]))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=1500, special_tokens=specials,
                                                             show_progress=False))
    return [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]


def byte_level_bpe(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=800, special_tokens=SPECIALS_ROBERTA, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tok


def modernbert_bpe(texts: list[str]):
    """ModernBERT's tokenizer.json shape: byte-level BPE, its special tokens after the learnt vocabulary,
    [CLS] a [SEP] (b [SEP]) by a template."""
    from tokenizers import processors

    tok = byte_level_bpe(texts)
    tok.add_special_tokens(["|||IP_ADDRESS|||", "<|padding|>", "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"])
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return tok


def sentencepiece_model(texts: list[str], model_type: str = "unigram", **extra) -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.Train(sentence_iterator=iter(texts), model_writer=model, vocab_size=1000,
                                   model_type=model_type, character_coverage=0.9995, num_threads=1, minloglevel=2,
                                   **extra)
    return model.getvalue()


def kobert_style_directory(texts: list[str], directory: Path, **extra) -> Path:
    """skt/kobert-base-v1's layout: spiece.model whose own ids are the embedding rows, [CLS]/[SEP] pieces
    (`extra`: other trainer options, model_type="bpe" say)."""
    (directory / "spiece.model").write_bytes(sentencepiece_model(
        texts, unk_id=0, unk_piece="[UNK]", pad_id=1, pad_piece="[PAD]", bos_id=2, bos_piece="[CLS]",
        eos_id=3, eos_piece="[SEP]", control_symbols=["[MASK]"], hard_vocab_limit=False, **extra))
    return directory


def write_json(path: Path, value: dict):
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")


@functools.cache
def tokenizer_directories(shared: Path) -> dict[str, Path]:
    import transformers

    english, korean = dataset_sentences(shared)
    texts = english + korean
    root = Path(tempfile.mkdtemp(prefix="tokenizer_families_"))
    dirs = {name: root / name for name in KINDS}
    for d in dirs.values():
        d.mkdir()

    transformers.RobertaTokenizerFast(tokenizer_object=byte_level_bpe(texts)).save_pretrained(dirs["roberta_bpe_json"])

    transformers.PreTrainedTokenizerFast(
        tokenizer_object=modernbert_bpe(texts), cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]",
        pad_token="[PAD]", mask_token="[MASK]", model_max_length=8192).save_pretrained(dirs["modernbert_bpe_json"])

    vocab_txt = "\n".join(wordpiece_vocab(texts, SPECIALS_BERT)) + "\n"
    for family, cls, lower in (("klue", transformers.BertTokenizerFast, False),
                               ("distilbert", transformers.DistilBertTokenizerFast, True),
                               ("electra", transformers.ElectraTokenizerFast, True)):
        d = dirs[f"{family}_wordpiece_json" if family == "klue" else f"{family}_json"]
        (d / "vocab.txt").write_text(vocab_txt, encoding="utf-8")
        cls(vocab_file=str(d / "vocab.txt"), do_lower_case=lower).save_pretrained(d)
        bare = dirs[f"{family}_vocab_txt"]
        for f in d.iterdir():
            if f.name != "tokenizer.json":
                shutil.copy(f, bare / f.name)

    # KLUE-style vocab.txt whose specials are spelled <s>, </s>, ... and named only in the config files.
    d = dirs["klue_vocab_txt_roberta_specials"]
    (d / "vocab.txt").write_text("\n".join(wordpiece_vocab(texts, ["<pad>", "<unk>", "<s>", "</s>", "<mask>"])) + "\n",
                                 encoding="utf-8")
    specials = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
                "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}
    write_json(d / "special_tokens_map.json", specials)
    write_json(d / "tokenizer_config.json", {"tokenizer_class": "BertTokenizer", "do_lower_case": False})

    d = dirs["xlmr_sentencepiece_model"]
    (d / "sentencepiece.bpe.model").write_bytes(sentencepiece_model(texts))
    write_json(d / "tokenizer_config.json", {"tokenizer_class": "XLMRobertaTokenizer"})
    transformers.AutoTokenizer.from_pretrained(d).save_pretrained(dirs["xlmr_unigram_json"])
    (dirs["xlmr_unigram_json"] / "sentencepiece.bpe.model").unlink(missing_ok=True)  # tokenizer.json alone

    # microsoft/deberta-v3-base's files: spm.model with [PAD] [CLS] [SEP] [UNK] first, a config without a class
    d = dirs["deberta_v3_spm_model"]
    (d / "spm.model").write_bytes(sentencepiece_model(
        texts, pad_id=0, pad_piece="[PAD]", bos_id=1, bos_piece="[CLS]", eos_id=2, eos_piece="[SEP]", unk_id=3,
        unk_piece="[UNK]"))
    write_json(d / "tokenizer_config.json", {"do_lower_case": False, "vocab_type": "spm"})
    write_json(d / "config.json", {"model_type": "deberta-v2"})
    transformers.AutoTokenizer.from_pretrained(d).save_pretrained(dirs["deberta_v3_json"])
    (dirs["deberta_v3_json"] / "spm.model").unlink(missing_ok=True)

    for name, (model_type, _) in KINDS.items():
        write_json(dirs[name] / "config.json", {"model_type": model_type})
    return dirs
