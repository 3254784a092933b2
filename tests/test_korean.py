"""The Korean / SentencePiece path on the real AI Hub emotion data: encoder directories laid out as
skt/kobert-base-v1 and monologg/kobert publish them load, train from the command line and predict
Korean text; `python -m model.scratch` builds such a directory from the training split alone."""
import json
import random

import numpy as np
import pytest
import torch

from data.readers import read_examples
from data.tokenizer import SentencePieceTokenizer, load_tokenizer
from inference.predictor import Predictor
from model.encoders.bert import BertEncoder, ours_to_hf
from model.checkpoint import load_checkpoint
from tests.conftest import run_script, tiny_config, write_jsonl

LABELS = ["공포", "놀람", "분노", "슬픔", "중립", "행복", "혐오"]  # the tutorial's ids 0..6
SENTENCES = ["정말 행복한 하루였어요", "너무 화가 나서 참을 수가 없어", "무서워서 잠을 못 자겠어", "아"]

# skt/kobert-base-v1 as published (huggingface.co/skt/kobert-base-v1, main = a9f5849): .gitattributes,
# README.md, config.json, pytorch_model.bin (BertModel state dict, keys without a `bert.` prefix),
# spiece.model, tokenizer_config.json, special_tokens_map.json. Copied below: config.json with every
# field as published except the sizes, and tokenizer_config.json verbatim.
KOBERT_CONFIG = {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": False,
                 "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
                 "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
                 "model_type": "bert", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
                 "type_vocab_size": 2, "vocab_size": 8002, "author": "Heewon Jeon(madjakarta@gmail.com)",
                 "kobert_version": 1.0}
KOBERT_TOKENIZER_CONFIG = (
    '{"do_lower_case": false, "remove_space": true, "keep_accents": false, "bos_token": "[CLS]", '
    '"eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", '
    '"mask_token": {"content": "[MASK]", "single_word": false, "lstrip": true, "rstrip": false, "normalized": true, '
    '"__type": "AddedToken"}, "additional_special_tokens": null, "sp_model_kwargs": {}, "tokenizer_class": "XLNetTokenizer"}')
# KoBERT's special ids: [UNK] 0, [PAD] 1 (config pad_token_id), [CLS] 2, [SEP] 3 (its tokenizer
# encodes a sentence as 2 ... 3), [MASK] 4.
KOBERT_SPECIALS = dict(unk_id=0, unk_piece="[UNK]", pad_id=1, pad_piece="[PAD]", bos_id=2, bos_piece="[CLS]",
                       eos_id=3, eos_piece="[SEP]", control_symbols=["[MASK]"])


@pytest.fixture(scope="module")
def korean(shared_datasets):
    """A fixed sample of the real sentences: enough for a small vocabulary, fast to train on."""
    examples = read_examples(shared_datasets / "korean_emotion" / "all.jsonl")
    picked = random.Random(0).sample(range(len(examples)), 3000)
    return examples.subset(picked)


def train_spiece(path, texts, vocab_size=2000):
    import sentencepiece as spm

    with open(path, "wb") as f:
        spm.SentencePieceTrainer.Train(sentence_iterator=iter(texts), model_writer=f, vocab_size=vocab_size,
                                       character_coverage=0.9995, num_threads=1, minloglevel=2, **KOBERT_SPECIALS)
    return spm.SentencePieceProcessor(model_file=str(path))


def write_bert_bin(directory, config: dict, seed=0) -> BertEncoder:
    """A random BertModel saved as transformers 4.x saved KoBERT: pytorch_model.bin, no prefix,
    with the `embeddings.position_ids` buffer that such files carry."""
    torch.manual_seed(seed)
    cfg = tiny_config(config["vocab_size"])
    cfg.pad_token_id = config["pad_token_id"]
    encoder = BertEncoder(cfg)
    state = {ours_to_hf(k, prefix=""): v for k, v in encoder.state_dict().items()}
    state["embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings)[None]
    torch.save(state, directory / "pytorch_model.bin")
    sizes = {k: getattr(cfg, k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                          "intermediate_size", "max_position_embeddings")}
    (directory / "config.json").write_text(json.dumps({**config, **sizes}, indent=2))
    return encoder


@pytest.fixture(scope="module")
def kobert_dir(tmp_path_factory, korean):
    directory = tmp_path_factory.mktemp("kobert-base-v1")
    sp = train_spiece(directory / "spiece.model", korean.texts)
    write_bert_bin(directory, {**KOBERT_CONFIG, "vocab_size": sp.GetPieceSize()})
    (directory / "tokenizer_config.json").write_text(KOBERT_TOKENIZER_CONFIG)
    (directory / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "cls_token": "[CLS]", "mask_token": {"content": "[MASK]", "single_word": False, "lstrip": True,
                                             "rstrip": False, "normalized": True}}))
    return directory


def test_korean_emotion_splits_80_10_10_seed_34_and_train_is_the_carved_part(shared_datasets):
    from hydra import compose, initialize_config_dir

    from data.build import read_split, read_splits
    from common.config import PROJECT_ROOT

    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        data_cfg = compose("config", overrides=["data=korean_emotion"]).data
    splits = read_splits(data_cfg)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [30875, 3859, 3860]
    assert (list(data_cfg.labels), data_cfg.split_seed) == (LABELS, 34)
    # data.train names the whole file: the training split alone is what evaluate.py's baselines fit on
    assert read_split(data_cfg, "train").texts == splits["train"].texts
    assert read_split(data_cfg, "test").texts == splits["test"].texts


def test_kobert_layout_gives_sentencepiece_ids_and_the_saved_weights(kobert_dir, korean):
    import sentencepiece as spm

    tok = load_tokenizer(kobert_dir)
    sp = spm.SentencePieceProcessor(model_file=str(kobert_dir / "spiece.model"))
    assert isinstance(tok, SentencePieceTokenizer) and tok.vocab_size == sp.GetPieceSize()
    assert (tok.unk_id, tok.pad_id, tok.cls_id, tok.sep_id) == (0, 1, 2, 3)
    assert tok.encode_batch(korean.texts[:50]) == sp.Encode(korean.texts[:50])
    assert any(0 in ids for ids in tok.encode_batch(["日本語 ✈ 뷁"]))  # unseen characters -> [UNK]
    saved = torch.load(kobert_dir / "pytorch_model.bin", weights_only=True)
    loaded = BertEncoder.from_pretrained(kobert_dir)
    assert loaded.embeddings.word.padding_idx == 1
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, saved[ours_to_hf(key, prefix="")]), key


@pytest.fixture(scope="module")
def trained_on_korean(kobert_dir, tmp_path_factory):
    """The tutorial's recipe on the real 38,594 sentences (its split and labels), a few steps."""
    run_dir = tmp_path_factory.mktemp("kobert_run")
    result = run_script("train.py", "experiment=kobert_emotion", f"model.path={kobert_dir}", "trainer.max_steps=3",
                        "trainer.threads=1", "trainer.eval_batch_size=512", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_kobert_layout_trains_on_the_korean_data_from_the_cli(trained_on_korean, kobert_dir):
    metrics = json.loads((trained_on_korean / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["steps"] == 3 and metrics["labels"] == LABELS
    # 80/10/10 of 38,594, stratified: the test split keeps every class.
    assert sum(c["support"] for c in metrics["test_per_class"].values()) == 3860
    assert all(c["support"] > 400 for c in metrics["test_per_class"].values())
    best = trained_on_korean / "checkpoints" / "best"
    for name in ("spiece.model", "tokenizer_config.json", "special_tokens_map.json"):
        assert (best / name).read_bytes() == (kobert_dir / name).read_bytes(), name
    assert load_tokenizer(best).encode_batch(SENTENCES) == load_tokenizer(kobert_dir).encode_batch(SENTENCES)


def test_predict_reads_korean_and_padding_with_pad_id_1_changes_nothing(trained_on_korean):
    best = trained_on_korean / "checkpoints" / "best"
    result = run_script("predict.py", f"checkpoint={best}", input="\n".join(SENTENCES) + "\n")
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == SENTENCES
    loaded = load_checkpoint(best)
    predictor = Predictor(loaded, torch.device("cpu"), "fp32")
    batched = predictor.probabilities(SENTENCES)  # one batch, padded with [PAD] = 1 to the longest
    alone = np.concatenate([predictor.probabilities([s]) for s in SENTENCES])
    np.testing.assert_allclose(batched, alone, atol=1e-6)
    for record, probs in zip(records, batched):
        assert list(record["probs"]) == LABELS and record["label"] == LABELS[int(probs.argmax())]
        np.testing.assert_allclose(list(record["probs"].values()), probs, atol=1e-5)


@pytest.fixture(scope="module")
def korean_files(korean, tmp_path_factory):
    directory = tmp_path_factory.mktemp("korean_files")
    rows = [{"text": t, "label": l} for t, l in zip(korean.texts, korean.labels)]
    return {split: write_jsonl(directory / f"{split}.jsonl", part)
            for split, part in [("train", rows[:2400]), ("validation", rows[2400:2700]), ("test", rows[2700:])]}


def data_overrides(files) -> list[str]:
    return ["data=files", *(f"data.{split}={path}" for split, path in files.items())]


def test_monologg_layout_looks_pieces_up_in_vocab_txt_and_trains(tmp_path, korean, korean_files):
    # monologg/kobert's files: tokenizer_78b3253a26.model (the same SentencePiece model under its
    # original KoBERT name), vocab.txt (one piece per line; its order gives the ids), config.json,
    # pytorch_model.bin, tokenizer_config.json.
    directory = tmp_path / "monologg-kobert"
    directory.mkdir()
    sp = train_spiece(directory / "tokenizer_78b3253a26.model", korean.texts)
    pieces = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
    vocab = pieces[:5] + sorted(pieces[5:])  # specials first as in KoBERT, then an order unlike the model's ids
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    write_bert_bin(directory, {**KOBERT_CONFIG, "vocab_size": len(vocab)})
    tok = load_tokenizer(directory)
    assert [vocab[i] for i in tok.encode_batch([SENTENCES[0]])[0]] == sp.Encode(SENTENCES[0], out_type=str)
    assert tok.encode_batch([SENTENCES[0]])[0] != sp.Encode(SENTENCES[0])  # so the ids really come from vocab.txt

    result = run_script("train.py", "model=bert", f"model.path={directory}", *data_overrides(korean_files),
                        "trainer.max_steps=2", "trainer.threads=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    best = tmp_path / "run" / "checkpoints" / "best"
    assert (best / "vocab.txt").read_bytes() == (directory / "vocab.txt").read_bytes()
    assert load_tokenizer(best).encode_batch(SENTENCES) == tok.encode_batch(SENTENCES)


def test_scratch_encoder_has_kobert_layout_and_learns_its_vocabulary_from_train_only(tmp_path, korean_files):
    import sentencepiece as spm

    marker = "뷁쉛"  # in validation and test only: must not reach the vocabulary
    files = dict(korean_files)
    for split in ("validation", "test"):
        files[split] = tmp_path / f"{split}.jsonl"
        files[split].write_text(korean_files[split].read_text(encoding="utf-8") + json.dumps(
            {"text": f"{marker} 진짜", "label": "중립"}, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "scratch"
    small = ["vocab.size=2000", "encoder.hidden_size=32", "encoder.num_hidden_layers=1",
             "encoder.num_attention_heads=2", "encoder.intermediate_size=64"]
    result = run_script("-m", "model.scratch", f"out={out}", *data_overrides(files), *small)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "from the 2400 texts" in result.stdout and "no pretraining" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "special_tokens_map.json",
                                                      "spiece.model", "tokenizer_config.json"]
    assert json.loads((out / "tokenizer_config.json").read_text()) == json.loads(KOBERT_TOKENIZER_CONFIG)
    config = json.loads((out / "config.json").read_text())
    assert (config["vocab_size"], config["pad_token_id"], config["hidden_size"]) == (2000, 1, 32)
    tok = load_tokenizer(out)
    assert (tok.unk_id, tok.pad_id, tok.cls_id, tok.sep_id, tok.vocab_size) == (0, 1, 2, 3, 2000)
    sp = spm.SentencePieceProcessor(model_file=str(out / "spiece.model"))
    assert all(sp.PieceToId(ch) == sp.unk_id() for ch in marker)
    assert BertEncoder.from_pretrained(out).config.num_hidden_layers == 1

    again = run_script("-m", "model.scratch", f"out={out}", *data_overrides(files), *small)
    assert again.returncode == 2 and again.stderr.strip() == f"error: out={out} is not empty: choose another " \
                                                               "directory or pass overwrite=true"


def test_scratch_vocabulary_larger_than_the_data_allows_is_a_one_line_error(tmp_path, korean_files):
    result = run_script("-m", "model.scratch", f"out={tmp_path / 'scratch'}", *data_overrides(korean_files),
                        "vocab.size=900000")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: vocab: SentencePiece cannot train on 2400 training texts")
    assert not (tmp_path / "scratch").exists()
