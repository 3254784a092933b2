"""train.py -> evaluate.py -> predict.py as a user runs them, on a tiny random BERT and generated data."""
import json
import subprocess
import sys

import numpy as np
import pexpect
import pytest

from common.config import PROJECT_ROOT
from tests.conftest import run_script
from tests.test_bad_input import one_line_error  # bad input and config mistakes: tests/test_bad_input.py


@pytest.fixture(scope="module")
def trained_run(tiny_model_dir, tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    result = run_script(
        "train.py", f"model.path={tiny_model_dir}", "data=files", f"data.train={tiny_data['train']}",
        f"data.validation={tiny_data['validation']}", f"data.test={tiny_data['test']}",
        # Mean pooling: a random 2-layer BERT learns the keywords from any seed; the tanh pooler
        # sometimes settles on two of the three classes first (the real checkpoint covers pooler).
        "model.pooling=mean", "trainer.max_epochs=8", "trainer.batch_size=16", "optim.lr=3e-3", "trainer.log_every=5",
        "trainer.precision=fp32", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def test_training_learns_and_writes_the_run_directory(trained_run):
    run_dir, result = trained_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.8, metrics  # chance is 1/3: keywords decide the class
    assert metrics["labels"] == ["anger", "fear", "joy"]  # sorted names when data.labels is unset
    assert len(metrics["history"]) == 8 and metrics["steps"] == 8 * 15
    best = run_dir / "checkpoints" / "best"
    assert {"model.safetensors", "config.json", "classifier.json", "vocab.txt", "train_config.yaml"} <= {
        p.name for p in best.iterdir()}
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert "test (best epoch" in result.stdout


def test_tensorboard_has_training_and_validation_curves(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = trained_run
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "val/loss", "val/accuracy", "val/macro_f1",
            "test/accuracy"} <= tags
    assert [e.step for e in events.Scalars("val/accuracy")] == [15 * k for k in range(1, 9)]


def test_evaluate_reproduces_the_test_metrics(trained_run, tmp_path):
    run_dir, _ = trained_run
    out = tmp_path / "eval.json"
    result = run_script("evaluate.py", f"checkpoint={run_dir / 'checkpoints' / 'best'}", "precision=fp32",
                        f"out={out}")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    train_metrics = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert report["accuracy"] == pytest.approx(train_metrics["accuracy"])
    assert report["macro_f1"] == pytest.approx(train_metrics["macro_f1"])
    assert len(report["confusion_matrix"]) == 3 and "precision" in report["per_class"]["joy"]
    assert "confusion matrix" in result.stdout


def test_evaluate_with_packed_weights_and_baselines_repeats_the_metrics(trained_run, tmp_path):
    """pack_weights=true packs the evaluated model and the frozen baseline encoder (model/packed_linear.py)."""
    run_dir, _ = trained_run
    out = tmp_path / "eval.json"
    result = run_script("evaluate.py", f"checkpoint={run_dir / 'checkpoints' / 'best'}", "precision=fp32",
                        "pack_weights=true", "baselines=true", f"out={out}")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    train_metrics = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert report["accuracy"] == pytest.approx(train_metrics["accuracy"])
    assert report["macro_f1"] == pytest.approx(train_metrics["macro_f1"])
    assert [b["name"].split(" (")[0] for b in report["baselines"]] == ["most frequent class",
                                                                       "logistic regression, frozen encoder",
                                                                       "logistic regression, TF-IDF of character 1-3-grams"]


def test_evaluate_writes_the_baselines_predictions_for_research_compare(trained_run, tmp_path):
    from evaluation.predictions import read_predictions

    run_dir, _ = trained_run
    out, files = tmp_path / "eval.json", tmp_path / "baselines"
    result = run_script("evaluate.py", f"checkpoint={run_dir / 'checkpoints' / 'best'}", "baselines=true",
                        f"baseline_predictions={files}", f"predictions={tmp_path / 'model.npz'}", f"out={out}")
    assert result.returncode == 0, result.stderr
    rows = {row["name"].split(" (")[0]: row for row in json.loads(out.read_text())["baselines"]}
    for name, file in [("most frequent class", "most_frequent_class.npz"),
                       ("logistic regression, frozen encoder", "frozen_encoder_lr.npz"),
                       ("logistic regression, TF-IDF of character 1-3-grams", "tfidf_char_lr.npz")]:
        predictions = read_predictions(files / file)
        assert np.mean(predictions.predicted == predictions.gold) == pytest.approx(rows[name]["accuracy"]), name
        np.testing.assert_allclose(predictions.probabilities.sum(1), 1.0, atol=1e-5)
    compared = run_script("-m", "research.compare", str(files / "tfidf_char_lr.npz"), str(tmp_path / "model.npz"),
                          "--resamples", "200")
    assert compared.returncode == 0 and "McNemar" in compared.stdout, compared.stderr
    refused = run_script("evaluate.py", f"checkpoint={run_dir / 'checkpoints' / 'best'}", f"baseline_predictions={files}")
    assert refused.returncode == 2 and "add baselines=true" in refused.stderr


def test_predict_piped_lines_give_one_json_object_each(trained_run):
    run_dir, _ = trained_run
    result = run_script("predict.py", f"checkpoint={run_dir / 'checkpoints' / 'best'}",
                        input="i feel so happy and great\n\ni am really furious today\n")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in records] == ["joy", "anger"]
    assert records[0]["text"] == "i feel so happy and great"
    assert set(records[0]["probs"]) == {"anger", "fear", "joy"}
    assert sum(records[0]["probs"].values()) == pytest.approx(1, abs=1e-4)
    assert records[0]["score"] == max(records[0]["probs"].values())


def test_predict_piped_survives_huge_lines_and_bad_bytes(trained_run):
    run_dir, _ = trained_run
    result = subprocess.run([sys.executable, "predict.py", f"checkpoint={run_dir / 'checkpoints' / 'best'}"],
                            input=b"so happy " * 20000 + b"\nbad \xff\xfe bytes but happy\n",
                            capture_output=True, cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(records) == 2 and records[1]["text"] == "bad \ufffd\ufffd bytes but happy"


def test_predict_one_text(trained_run):
    run_dir, _ = trained_run
    result = run_script("predict.py", f"checkpoint={run_dir / 'checkpoints' / 'best'}", "text=so scared today")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["label"] == "fear"


def test_predict_repl_in_a_terminal(trained_run):
    run_dir, _ = trained_run
    child = pexpect.spawn(sys.executable, ["predict.py", f"checkpoint={run_dir / 'checkpoints' / 'best'}"],
                          cwd=str(PROJECT_ROOT), encoding="utf-8", timeout=60)
    child.expect("> ")
    child.sendline("")  # blank lines are ignored: straight back to the prompt
    child.expect("> ")
    child.sendline("i am afraid and terrified 😱")
    child.expect(r"fear\s+\(\d+\.\d%\)")
    child.expect("> ")
    # A terminal line holds at most 4095 characters; control characters, mixed scripts and emoji.
    for text in ["furious " * 500, "\x01\x02\x1b[31m so mad \x7f", "행복 happy 😀 سعيد 日本 \u200b"]:
        child.sendline(text)
        child.expect(r"(anger|fear|joy)\s+\(\d+\.\d%\)")
        child.expect("> ")
    child.sendline("0")  # the KoBERT tutorial's way out
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_predict_repl_ends_cleanly_on_ctrl_d_and_ctrl_c(trained_run):
    run_dir, _ = trained_run
    for key in ("\x04", "\x03"):
        child = pexpect.spawn(sys.executable, ["predict.py", f"checkpoint={run_dir / 'checkpoints' / 'best'}"],
                              cwd=str(PROJECT_ROOT), encoding="utf-8", timeout=60)
        child.expect("> ")
        child.send(key)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0 and "Traceback" not in child.before


def test_multirun_gives_each_job_its_own_run_directory(tiny_model_dir, tiny_data, tmp_path):
    result = run_script("train.py", "-m", f"model.path={tiny_model_dir}", "data=files",
                        f"data.train={tiny_data['train']}", f"data.validation={tiny_data['validation']}",
                        f"data.test={tiny_data['test']}", "trainer.max_steps=3", "optim.lr=1e-3,3e-3",
                        "model.dropout=0.1,0.5", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    for job in range(4):
        assert (tmp_path / str(job) / "metrics.json").is_file()
        assert (tmp_path / str(job) / "checkpoints" / "best" / "model.safetensors").is_file()
    assert "optim.lr=0.003 model.dropout=0.5" in (tmp_path / "3" / ".hydra" / "overrides.yaml").read_text().replace(
        "\n- ", " ")


def test_checkpoint_without_weights_is_one_line(trained_run, tmp_path):
    run_dir, _ = trained_run
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in (run_dir / "checkpoints" / "best").iterdir():
        if f.name != "model.safetensors":
            (broken / f.name).write_bytes(f.read_bytes())
    for script, *extra in (("predict.py", "text=hi"), ("evaluate.py",)):
        result = run_script(script, f"checkpoint={broken}", *extra)
        assert "model.safetensors is missing" in one_line_error(result), script


def test_real_default_encoder_trains_on_real_emotion_data(default_model_dir, shared_datasets, tmp_path):
    """Two optimizer steps of the embedded default on dair-ai emotion: the real pipeline, end to end."""
    result = run_script("train.py", "data=emotion", f"shared_datasets={shared_datasets}", "trainer.max_steps=2",
                        "trainer.batch_size=8", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["labels"] == ["sadness", "joy", "love", "anger", "fear", "surprise"]
    assert metrics["steps"] == 2 and 0 <= metrics["test"]["accuracy"] <= 1
    assert "train: examples 16000" in result.stdout and "validation: examples 2000" in result.stdout
