"""Everything else keeps working on the multilingual encoder (issue 15, item 7): a run trimmed to its
Korean/English training split (model.trim_vocab) on the e5-vocabulary tiny BERT (conftest.py
e5_vocab_bert), then evaluate, predict (REPL and piped), export (onnx; hf with pooling=pooler), resume,
DDP, the data report and a sweep on it."""
import contextlib
import io
import json
import os
import shutil
import signal
import sys

import numpy as np
import pexpect
import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file

from common.config import PROJECT_ROOT
from data.dataset import ClassificationDataset
from data.report import describe, format_report
from data.tokenizer import load_tokenizer
from inference.predictor import Predictor
from inference.batches import eval_loader, predict_logits
from model.checkpoint import load_checkpoint
from tests.conftest import make_examples, run_script, sigterm_after_step, write_jsonl
from tests.test_bad_input import one_line_error
from tests.test_distributed import TOLERANCE as DDP_TOLERANCE, TORCHRUN, max_difference
from tests.test_resume import assert_bitwise_equal
from tests.test_sweeps import read_csv
from train import train

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # exported directories must load without a network
TOLERANCE = 1e-4  # exported runtimes against our logits and probabilities (as tests/test_export.py)

# Words that decide the class (Korean, and one English word each), in neutral filler.
CLASS_WORDS = {"기쁨": ["행복해요", "기뻐요", "신나요", "happy"], "분노": ["화가 나요", "짜증나요", "열받아요", "angry"],
               "공포": ["무서워요", "겁나요", "두려워요", "scared"]}
FILLER = ["오늘", "정말", "너무", "친구와", "회사에서", "집에서", "아침부터", "today", "really", "so"]
UNSEEN = "국립중앙박물관에서 전시회를 관람했다"  # its pieces are in no training text: trimmed away
NO_PIECE = "🫠🥹"  # characters no piece of the 250k spells: <unk>, with or without trimming
# Different lengths (padding in every batch), trimmed pieces, <unk>, and a text longer than max_len (64).
TEXTS = ["오늘 정말 행복해요", UNSEEN, f"{NO_PIECE} 무서워요", "친구와 happy", "화가 나요 " * 40, "아침부터 짜증나요"]


def korean_examples(n: int, seed: int) -> list[dict]:
    return make_examples(n, seed, CLASS_WORDS, FILLER, fillers=(1, 4))


@pytest.fixture(scope="module")
def korean_data(tmp_path_factory) -> dict:
    directory = tmp_path_factory.mktemp("korean_data")
    # 96 training examples: 6 steps of 16 per epoch, 8 per process under DDP.
    return {split: write_jsonl(directory / f"{split}.jsonl", korean_examples(n, seed))
            for split, n, seed in [("train", 96, 31), ("validation", 24, 32), ("test", 24, 33)]}


@pytest.fixture(scope="module")
def no_dropout_e5(e5_vocab_bert, tmp_path_factory):
    """The same encoder without dropout: differently split batches (DDP) then train the same weights."""
    directory = tmp_path_factory.mktemp("e5_vocab_bert_no_dropout")
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (directory / name).symlink_to(e5_vocab_bert / name)
    config = json.loads((e5_vocab_bert / "config.json").read_text())
    config["hidden_dropout_prob"] = config["attention_probs_dropout_prob"] = 0.0
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def train_overrides(model_dir, data, *extra) -> list[str]:
    return ["model=bert", f"model.path={model_dir}", "model.trim_vocab=true", "data=files",
            *(f"data.{split}={path}" for split, path in data.items()), "trainer.batch_size=16",
            "trainer.max_epochs=1", "optim.lr=3e-3", "trainer.precision=fp32", "trainer.threads=1", *extra]


def mean_run_args(no_dropout_e5, korean_data, run_dir) -> list[str]:
    # Dense embedding gradients, as torchrun's: the DDP test compares this run's weights with two processes'.
    return ["train.py", *train_overrides(no_dropout_e5, korean_data, "model.pooling=mean", "model.dropout=0",
                                         "optim.sparse_embedding=false"), f"hydra.run.dir={run_dir}"]


@pytest.fixture(scope="module")
def mean_run(no_dropout_e5, korean_data, tmp_path_factory):
    """The run the tests below evaluate, predict with and export: trained once from the command line."""
    run_dir = tmp_path_factory.mktemp("e5_mean_run")
    result = run_script(*mean_run_args(no_dropout_e5, korean_data, run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "vocabulary trimmed to the training split" in result.stdout
    return run_dir


def train_in_process(overrides, run_dir):
    """train.py's train(cfg) in this process, as tests/test_loop.py runs it; returns what it printed.
    trainer.threads=1 would stay set for the rest of the session: the thread count is put back."""
    threads, printed = torch.get_num_threads(), io.StringIO()
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    try:
        with contextlib.redirect_stdout(printed):
            train(cfg, run_dir)
    finally:
        torch.set_num_threads(threads)
    return printed.getvalue()


PREFIX = "query: "  # E5's query prefix (data.text_prefix), on the pooler run


def pooler_overrides(e5_vocab_bert, korean_data, *extra) -> list[str]:
    # Two epochs with dropout: a stop in the first resumes mid-epoch, RNG state included.
    return train_overrides(e5_vocab_bert, korean_data, "model.pooling=pooler", f"data.text_prefix='{PREFIX}'",
                           "trainer.max_epochs=2", "trainer.log_every=2", "trainer.analysis=false", *extra)


@pytest.fixture(scope="module")
def pooler_run(e5_vocab_bert, korean_data, tmp_path_factory):
    """pooling=pooler (what format=hf exports) with data.text_prefix, trained in process; the uninterrupted
    run of the resume test."""
    run_dir = tmp_path_factory.mktemp("e5_pooler_run")
    printed = train_in_process(pooler_overrides(e5_vocab_bert, korean_data), run_dir)
    return run_dir, printed


def best(run_dir):
    return run_dir / "checkpoints" / "best"


def last_weights(run_dir):
    return load_file(str(run_dir / "checkpoints" / "last" / "model.safetensors"))


def our_logits(loaded, texts=TEXTS):
    """Logits the way evaluate.py computes them: length-sorted batches, each padded to its longest."""
    dataset = ClassificationDataset(texts, None, loaded.transform)
    return predict_logits(loaded.model, eval_loader(dataset, batch_size=4), "cpu", contextlib.nullcontext())


def padded_batch(loaded, texts=TEXTS) -> dict:
    """One batch of all the texts, padded to the longest, as Hugging Face-style numpy inputs."""
    batch = ClassificationDataset(texts, None, loaded.transform).collate(np.arange(len(texts)))
    mask = torch.arange(batch.token_ids.shape[1])[None] < batch.valid_length[:, None]
    return {"input_ids": batch.token_ids.numpy(), "attention_mask": mask.long().numpy(),
            "token_type_ids": batch.segment_ids.numpy()}


def export(checkpoint, fmt, out):
    result = run_script("-m", "model.export", f"checkpoint={checkpoint}", f"format={fmt}", f"out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    return result


# ---- 1. evaluate

def test_evaluate_repeats_the_test_metrics_and_scores_the_three_baselines(mean_run, tmp_path):
    out = tmp_path / "eval.json"
    result = run_script("evaluate.py", f"checkpoint={best(mean_run)}", "precision=fp32", "baselines=true",
                        f"out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    train_metrics = json.loads((mean_run / "metrics.json").read_text())["test"]
    assert report["accuracy"] == pytest.approx(train_metrics["accuracy"])
    assert report["macro_f1"] == pytest.approx(train_metrics["macro_f1"])
    assert sorted(report["per_class"]) == sorted(CLASS_WORDS) and len(report["confusion_matrix"]) == 3
    assert [b["name"].split(" (")[0] for b in report["baselines"]] == [
        "most frequent class", "logistic regression, frozen encoder",
        "logistic regression, TF-IDF of character 1-3-grams"]
    assert all(0 <= b["accuracy"] <= 1 for b in report["baselines"])


# ---- 2. predict

def test_predict_repl_answers_korean_sentences(mean_run):
    child = pexpect.spawn(sys.executable, ["predict.py", f"checkpoint={best(mean_run)}"], cwd=str(PROJECT_ROOT),
                          encoding="utf-8", timeout=60)
    child.expect("> ")
    for text in ["오늘 정말 행복해요", UNSEEN, f"{NO_PIECE} 무서워요"]:
        child.sendline(text)
        child.expect(r"(기쁨|분노|공포)\s+\(\d+\.\d%\)")
        child.expect("> ")
    child.sendline("0")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "Traceback" not in child.before


def test_predict_piped_korean_lines_give_labels_even_for_trimmed_and_unknown_pieces(mean_run, e5_vocab_bert):
    loaded = load_checkpoint(best(mean_run))
    trimmed, full = loaded.transform.tokenizer, load_tokenizer(e5_vocab_bert)
    assert trimmed.vocab_size < 15_000 < full.vocab_size
    # The premise: UNSEEN needs pieces that were trimmed (it is cut into more, shorter kept ones), and
    # NO_PIECE is <unk> in both vocabularies.
    assert len(trimmed.encode_batch([UNSEEN])[0]) > len(full.encode_batch([UNSEEN])[0])
    assert trimmed.unk_id in trimmed.encode_batch([NO_PIECE])[0] and full.unk_id in full.encode_batch([NO_PIECE])[0]

    lines = ["오늘 정말 행복해요", UNSEEN, f"{NO_PIECE} 무서워요", NO_PIECE, "so happy today"]
    result = run_script("predict.py", f"checkpoint={best(mean_run)}", input="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == lines
    probs = Predictor(loaded, "cpu", "fp32").probabilities(lines)
    for record, ours in zip(records, probs):
        assert set(record["probs"]) == set(CLASS_WORDS) and record["label"] == loaded.info.labels[int(ours.argmax())]
        assert [record["probs"][name] for name in loaded.info.labels] == pytest.approx(ours, abs=1e-5)
        assert record["score"] == max(record["probs"].values())


# ---- 3, 4. export

def test_onnx_runtime_gives_our_logits_on_a_padded_korean_batch(mean_run, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is a test-only dependency")
    from tokenizers import Tokenizer

    out = tmp_path / "onnx"
    assert "data.text_prefix" not in export(best(mean_run), "onnx", out).stdout  # no prefix, no note
    loaded = load_checkpoint(best(mean_run))
    # `tokenizers` alone, from the exported (trimmed) tokenizer.json: truncation, padding and <s>/</s> are in it.
    encodings = Tokenizer.from_file(str(out / "tokenizer.json")).encode_batch(TEXTS)
    inputs = {"input_ids": np.array([e.ids for e in encodings]),
              "attention_mask": np.array([e.attention_mask for e in encodings]),
              "token_type_ids": np.array([e.type_ids for e in encodings])}
    ours = padded_batch(loaded)
    for name in inputs:
        np.testing.assert_array_equal(inputs[name], ours[name])
    assert (inputs["attention_mask"] == 0).any() and inputs["input_ids"].shape[1] == loaded.info.max_len
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, inputs)[0] - our_logits(loaded)).max() < TOLERANCE


def test_hf_export_of_a_pooler_run_loads_in_auto_tokenizer_and_pipeline(pooler_run, tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers is a test-only dependency")
    run_dir, printed = pooler_run
    assert "has no pretrained pooler; pooling=pooler would start it fresh" in printed
    out = tmp_path / "hf"
    result = export(best(run_dir), "hf", out)
    # No tokenizer file carries the prefix to transformers: the export says to add it, and with it the
    # ids and scores are ours.
    assert f"note: the checkpoint was trained with data.text_prefix={PREFIX!r}" in result.stdout
    loaded = load_checkpoint(best(run_dir))
    assert loaded.info.text_prefix == PREFIX
    prefixed = [PREFIX + text for text in TEXTS]

    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == loaded.transform.tokenizer.vocab_size < 15_000  # the trimmed vocabulary
    inputs = tokenizer(prefixed, padding=True, truncation=True, return_tensors="np")
    np.testing.assert_array_equal(inputs["input_ids"], padded_batch(loaded)["input_ids"])
    assert (inputs["attention_mask"] == 0).any()

    classify = transformers.pipeline("text-classification", model=str(out), device="cpu")
    results = classify(prefixed, top_k=None, truncation=True)
    probs = Predictor(loaded, "cpu", "fp32").probabilities(TEXTS)
    for scores, ours in zip(results, probs):
        assert sorted(s["label"] for s in scores) == sorted(loaded.info.labels)
        for s in scores:
            assert abs(s["score"] - ours[loaded.info.labels.index(s["label"])]) < TOLERANCE
        assert scores[0]["label"] == loaded.info.labels[int(ours.argmax())]


def test_mean_pooled_run_is_refused_for_hf_export_in_one_line(mean_run, tmp_path):
    result = run_script("-m", "model.export", f"checkpoint={best(mean_run)}", "format=hf", f"out={tmp_path / 'hf'}")
    assert "pooling='mean' cannot be exported as format=hf" in one_line_error(result)
    assert not (tmp_path / "hf").exists()


# ---- 5. resume

def test_trimmed_run_stopped_mid_epoch_resumes_to_bitwise_identical_weights(pooler_run, e5_vocab_bert, korean_data,
                                                                            tmp_path):
    """Trimming is recomputed from the same training split on resume: same pieces, same table shape."""
    with sigterm_after_step(4), pytest.raises(SystemExit) as stopped:
        train_in_process(pooler_overrides(e5_vocab_bert, korean_data), tmp_path)
    assert stopped.value.code == 128 + signal.SIGTERM
    saved = json.loads((tmp_path / "checkpoints" / "last" / "training_state.json").read_text())["progress"]
    assert (saved["step"], saved["epoch"], saved["batch_in_epoch"]) == (4, 0, 4)  # mid-epoch (6 steps each)

    printed = train_in_process(pooler_overrides(e5_vocab_bert, korean_data, "trainer.resume=auto"), tmp_path)
    assert "resumed from" in printed and "at step 4" in printed
    uninterrupted = pooler_run[0]
    assert_bitwise_equal(last_weights(tmp_path), last_weights(uninterrupted))
    ours, reference = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path, uninterrupted))
    assert ours["test"] == reference["test"] and ours["steps"] == reference["steps"] == 12


def test_resuming_with_another_training_split_is_refused_in_one_line(pooler_run, e5_vocab_bert, korean_data,
                                                                    tmp_path):
    """Another split trims to other pieces: their rows must not load under the saved ones."""
    shutil.copytree(pooler_run[0] / "checkpoints" / "last", tmp_path / "run" / "checkpoints" / "last")
    rows = [json.loads(line) for line in korean_data["train"].read_text(encoding="utf-8").splitlines()]
    changed = {**korean_data, "train": write_jsonl(tmp_path / "train.jsonl", rows + [{"text": UNSEEN, "label": "기쁨"}])}
    result = run_script("train.py", *pooler_overrides(e5_vocab_bert, changed, "trainer.resume=auto"),
                        f"hydra.run.dir={tmp_path / 'run'}")
    assert "no longer gives the vocabulary this run was trimmed to" in one_line_error(result)


# ---- 6. DDP

def test_two_processes_with_trimming_train_the_weights_of_one(mean_run, no_dropout_e5, korean_data, tmp_path):
    result = run_script(*TORCHRUN, *mean_run_args(no_dropout_e5, korean_data, tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "6 steps (6/epoch) of 16 examples = 2 process(es)" in result.stdout
    assert (best(tmp_path) / "tokenizer.json").read_bytes() == (best(mean_run) / "tokenizer.json").read_bytes()
    assert max_difference(last_weights(tmp_path), last_weights(mean_run)) < DDP_TOLERANCE


# ---- 7. data report, sweep

def test_data_report_counts_tokens_of_the_multilingual_tokenizer_with_the_prefix(e5_vocab_bert, korean_data,
                                                                                 tmp_path):
    splits = [f"data.{split}={path}" for split, path in korean_data.items()]
    result = run_script("-m", "data.report", "model=bert", f"model.path={e5_vocab_bert}", "data=files", *splits,
                        "data.text_prefix='query: '", f"out={tmp_path / 'report'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"tokenizer of {e5_vocab_bert} (250,002 ids)" in result.stdout
    for png in ("class_frequency.png", "token_length.png"):
        assert (tmp_path / "report" / png).read_bytes().startswith(b"\x89PNG")

    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        data_cfg = {prefix: compose("report", overrides=["data=files", *splits, f"data.text_prefix={prefix}"]).data
                    for prefix in ("'query: '", "''")}
    tokenizer = load_tokenizer(e5_vocab_bert)
    with_prefix, without = (describe(data_cfg[p], tokenizer) for p in ("'query: '", "''"))
    assert format_report(with_prefix) in result.stdout  # what was printed counts the prefix's tokens
    for split in korean_data:
        assert (with_prefix["splits"][split]["lengths"] > without["splits"][split]["lengths"]).all()


def test_sweep_with_trimming_writes_its_summary(e5_vocab_bert, korean_data, tmp_path):
    result = run_script("train.py", "-m", *train_overrides(e5_vocab_bert, korean_data, "model.pooling=mean",
                                                           "trainer.analysis=false"),
                        "optim.lr=1e-3,3e-3", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("vocabulary trimmed to the training split") == 2
    summary = (tmp_path / "summary.md").read_text()
    assert "2 jobs, 2 completed" in summary and summary in result.stdout
    rows = read_csv(tmp_path / "summary.csv")
    assert sorted(row["job"] for row in rows) == ["0", "1"] and {row["status"] for row in rows} == {"ok"}
    for job in ("0", "1"):
        assert json.loads((best(tmp_path / job) / "config.json").read_text())["vocab_size"] < 15_000
