"""python -m training.mlm: continued masked-LM pretraining on the training split, written as a model.path."""
import json

import torch

from data.tokenizer import load_tokenizer
from training.mlm import mask_tokens
from model.encoders.bert import BertEncoder
from tests.conftest import run_script, write_jsonl

TEXTS = ["정말 행복한 하루였어요", "너무 화가 나서 참을 수가 없어", "무서워서 잠을 못 자겠어", "시험에 떨어져서 너무 슬프다"]


def test_masking_picks_only_real_non_special_tokens_and_keeps_the_rest():
    token_ids = torch.tensor([[0, 10, 11, 12, 2, 1], [0, 13, 2, 1, 1, 1]])
    lengths = torch.tensor([5, 3])
    inputs, targets = mask_tokens(token_ids, lengths, [0, 1, 2, 3, 99], 99, 50, 0.99,
                                  torch.Generator().manual_seed(0))
    picked = targets != -100
    assert picked[:, 0].sum() == 0 and picked[0, 4:].sum() == 0 and picked[1, 2:].sum() == 0
    assert picked[0, 1:4].all() and picked[1, 1]
    assert torch.equal(targets[picked], token_ids[picked])
    assert torch.equal(inputs[~picked], token_ids[~picked])
    # 80% of the picks become the mask token: with p=0.99 nearly all positions are picked.
    big = torch.randint(10, 50, (64, 32))
    inputs, targets = mask_tokens(big, torch.full((64,), 32), [0, 1, 2, 3, 99], 99, 50, 0.15,
                                  torch.Generator().manual_seed(1))
    picked = targets != -100
    assert 0.12 < picked.float().mean() < 0.18
    assert 0.75 < (inputs[picked] == 99).float().mean() < 0.85


def test_mlm_lowers_the_held_out_loss_and_writes_an_encoder_train_py_reads(e5_vocab_bert, tmp_path):
    rows = [{"text": t, "label": ["a", "b"][i % 2]} for i, t in enumerate(TEXTS * 30)]
    files = {split: write_jsonl(tmp_path / f"{split}.jsonl", rows) for split in ("train", "validation", "test")}
    out = tmp_path / "adapted"
    data = ["data=files", *(f"data.{s}={p}" for s, p in files.items())]
    result = run_script("-m", "training.mlm", "model=bert", f"model.path={e5_vocab_bert}", *data, f"out={out}",
                        "epochs=3", "lr=3e-3", "batch_size=8", "threads=1")
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((out / "config.json").read_text())["source"]["continued_masked_lm"]["held_out_validation"]
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]  # the same texts held out: it must learn them
    encoder = BertEncoder.from_pretrained(out)  # no pooler saved: it starts fresh, as in the source
    tokenizer = load_tokenizer(out)
    assert encoder.config.vocab_size == tokenizer.vocab_size < 15_000  # trimmed (conf/mlm.yaml)
    run_dir = tmp_path / "run"
    result = run_script("train.py", "model=bert", f"model.path={out}", "model.pooling=mean", *data,
                        "trainer.max_steps=2", "trainer.threads=1", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_script("-m", "training.mlm", "model=bert", f"model.path={e5_vocab_bert}", *data, f"out={out}")
    assert result.returncode == 2 and "is not empty" in result.stderr and "Traceback" not in result.stderr
