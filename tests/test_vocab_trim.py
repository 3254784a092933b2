"""model.trim_vocab: the multilingual vocabulary restricted to the training split's pieces (+ every
single-character piece), on the real multilingual-e5 tokenizer with a tiny random BERT behind it."""
import json

import numpy as np
import pytest
import torch

from common.errors import UserError
from data.tokenizer import load_tokenizer
from data.vocab_trim import trimmed_tokenizer
from model.encoders.bert import BertEncoder
from model.checkpoint import load_checkpoint
from model.classifier import BERTClassifier
from tests.conftest import run_script, write_jsonl

TRAIN = ["정말 행복한 하루였어요", "너무 화가 나서 참을 수가 없어", "무서워서 잠을 못 자겠어",
         "시험에 떨어져서 너무 슬프다", "갑자기 소리가 나서 깜짝 놀랐어", "그 사람 정말 역겹다", "회의는 세 시에 시작합니다"]
UNSEEN = ["오늘은 기분이 아주 좋습니다", "국립중앙박물관에서 전시회를 관람했다", "the weather is lovely today", "😀 ✈ 뷁"]
LABELS = ["행복", "분노", "공포", "슬픔", "놀람", "혐오", "중립"]


def pieces(tokenizer, ids):
    return [tokenizer._tok.id_to_token(i) for i in ids]


def test_training_texts_keep_their_pieces_and_unseen_texts_still_tokenize(e5_vocab_bert):
    full = load_tokenizer(e5_vocab_bert)
    trimmed, kept = trimmed_tokenizer(full, TRAIN)
    assert 13_000 < len(kept) < 14_500 and trimmed.vocab_size == len(kept)  # ~13.8k single characters + a few
    assert (trimmed.cls_id, trimmed.sep_id, trimmed.pad_id, trimmed.unk_id) == (0, 2, 1, 3)
    for text, full_ids, trimmed_ids in zip(TRAIN, full.encode_batch(TRAIN), trimmed.encode_batch(TRAIN)):
        assert [kept[i] for i in trimmed_ids] == full_ids, text
    for text, full_ids, trimmed_ids in zip(UNSEEN, full.encode_batch(UNSEEN), trimmed.encode_batch(UNSEEN)):
        # Same characters, cut into kept pieces; <unk> only where the full vocabulary has one too.
        assert "".join(pieces(trimmed, trimmed_ids)) == "".join(pieces(full, full_ids)), text
        assert (trimmed.unk_id in trimmed_ids) == (full.unk_id in full_ids), text
    assert any(len(t) > len(f) for t, f in zip(trimmed.encode_batch(UNSEEN), full.encode_batch(UNSEEN)))


def test_kept_rows_give_the_full_models_outputs(e5_vocab_bert):
    full_tok = load_tokenizer(e5_vocab_bert)
    trimmed_tok, kept = trimmed_tokenizer(full_tok, TRAIN)
    torch.manual_seed(0)
    full = BERTClassifier(BertEncoder.from_pretrained(e5_vocab_bert), 3, pooling="mean").eval()
    small = BERTClassifier(BertEncoder.from_pretrained(e5_vocab_bert), 3, pooling="mean").eval()
    small.load_state_dict(full.state_dict())
    small.encoder.keep_vocabulary(kept)
    assert small.encoder.embeddings.word.weight.shape == (len(kept), 32)
    assert small.encoder.config.vocab_size == len(kept)
    ids = lambda tok, text: torch.tensor([[tok.cls_id, *tok.encode_batch([text])[0], tok.sep_id]])  # noqa: E731
    with torch.no_grad():
        for text in TRAIN:
            a, b = ids(full_tok, text), ids(trimmed_tok, text)
            torch.testing.assert_close(small(b, torch.tensor([b.shape[1]])), full(a, torch.tensor([a.shape[1]])))


def test_trimming_needs_a_unigram_tokenizer(tiny_model_dir):
    with pytest.raises(UserError, match="needs a Unigram tokenizer.json") as e:
        trimmed_tokenizer(load_tokenizer(tiny_model_dir), ["i feel happy"])
    assert "\n" not in str(e.value)


def test_trimmed_run_from_the_cli_gives_a_self_contained_checkpoint(e5_vocab_bert, tmp_path):
    rows = [{"text": text, "label": LABELS[i % len(LABELS)]} for i, text in enumerate(TRAIN * 6)]
    files = {split: write_jsonl(tmp_path / f"{split}.jsonl", rows) for split in ("train", "validation", "test")}
    run_dir = tmp_path / "run"
    result = run_script("train.py", "model=bert", f"model.path={e5_vocab_bert}", "model.trim_vocab=true",
                        "model.pooling=mean", "data=files", *(f"data.{s}={p}" for s, p in files.items()),
                        "data.text_prefix='query: '", "trainer.max_steps=2", "trainer.batch_size=8",
                        "trainer.threads=1", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "vocabulary trimmed to the training split" in result.stdout
    best = run_dir / "checkpoints" / "best"
    config = json.loads((best / "config.json").read_text())
    vocab = json.loads((best / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    assert config["vocab_size"] == len(vocab) < 15_000
    assert json.loads((best / "classifier.json").read_text(encoding="utf-8"))["text_prefix"] == "query: "
    hidden = e5_vocab_bert.rename(tmp_path / "encoder_moved_away")  # the checkpoint must not need it
    try:
        assert load_checkpoint(best).transform.tokenizer.vocab_size == len(vocab)
        result = run_script("predict.py", f"checkpoint={best}", input="\n".join(UNSEEN) + "\n")
    finally:
        hidden.rename(e5_vocab_bert)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == UNSEEN and all(r["label"] in LABELS for r in records)
    assert all(np.isclose(sum(r["probs"].values()), 1, atol=1e-4) for r in records)
