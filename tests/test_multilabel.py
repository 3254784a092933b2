"""Multi-label mode (issue 17) above the data layer: the loss, threshold tuning on a problem with a known
answer, the metrics against scikit-learn, and a tiny real run whose checkpoint evaluate, predict and
the Hugging Face export all read (data readers: tests/test_multilabel_data.py)."""
import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.metrics import average_precision_score, f1_score

from evaluation.metrics import multilabel_metrics
from inference.decision import Decision
from training.objective import balanced_pos_weight, build_objective
from evaluation.predictions import read_predictions
from evaluation.thresholds import tune_thresholds
from tests.conftest import FILLER, onnx_logits, run_script, write_splits

LABEL_WORDS = {"joy": ["happy", "great"], "anger": ["angry", "mad"], "fear": ["afraid", "scared"],
               "love": ["love", "adore"]}
LABELS = sorted(LABEL_WORDS)


def multilabel_rows(n: int, seed: int) -> list[dict]:
    """Each text carries one or two labels, one word of each among filler words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        labels = rng.sample(LABELS, 1 + (i % 3 == 0))
        words = rng.sample(FILLER, rng.randint(2, 6)) + [rng.choice(LABEL_WORDS[name]) for name in labels]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "labels": labels})
    return rows


@pytest.fixture(scope="module")
def multilabel_data(tmp_path_factory) -> dict:
    return write_splits(tmp_path_factory.mktemp("multilabel_data"), multilabel_rows)


@pytest.fixture(scope="module")
def multilabel_run(tiny_model_dir, multilabel_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("multilabel_run")
    result = run_script("train.py", f"model.path={tiny_model_dir}", "data=files",
                        *(f"data.{split}={path}" for split, path in multilabel_data.items()),
                        "data.label_column=labels", "trainer.max_epochs=6", "trainer.batch_size=16", "optim.lr=3e-3",
                        "trainer.precision=fp32", "model.pooling=pooler", "trainer.monitor=macro_f1",
                        "loss.pos_weight=balanced", "trainer.top_losses=5", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result.stdout


# ---- loss, thresholds, metrics


def test_multi_label_loss_is_the_mean_binary_cross_entropy_with_pos_weight():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 1]], np.float32)
    cfg = OmegaConf.create({"class_weights": None, "label_smoothing": 0.0, "pos_weight": "balanced"})
    objective, named = build_objective(cfg, ["a", "b", "c"], labels)
    assert objective.multi_label and named == pytest.approx({"a": 1 / 3, "b": 3.0, "c": 3.0}, abs=1e-6)  # neg / pos
    assert np.allclose(balanced_pos_weight(labels), [1 / 3, 3, 3])
    logits, gold = torch.randn(4, 3), torch.from_numpy(labels)
    expected = F.binary_cross_entropy_with_logits(logits, gold, pos_weight=objective.weights) * 4
    assert torch.isclose(objective.summed_loss(logits, gold), expected)


def test_smoothing_or_class_weights_on_multi_label_data_are_one_line_errors():
    from common.errors import UserError

    labels = np.eye(3, dtype=np.float32)
    with pytest.raises(UserError, match="label_smoothing=0.1 is for single-label data"):
        build_objective(OmegaConf.create({"class_weights": None, "label_smoothing": 0.1, "pos_weight": None}),
                        ["a", "b", "c"], labels)
    with pytest.raises(UserError, match="loss.pos_weight is for multi-label data"):
        build_objective(OmegaConf.create({"class_weights": None, "label_smoothing": 0.0, "pos_weight": "balanced"}),
                        ["a", "b", "c"], np.array([0, 1, 2]))


def separable_problem():
    """Label 0's positives score 0.70-0.80 and its negatives 0.40-0.60; label 1's positives 0.20-0.30 and
    its negatives 0.00-0.15: the best threshold of each is known, and no single one serves both."""
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, size=(400, 2))
    probabilities = np.where(gold[:, :1] == 1, rng.uniform(0.70, 0.80, (400, 1)), rng.uniform(0.40, 0.60, (400, 1)))
    second = np.where(gold[:, 1:] == 1, rng.uniform(0.20, 0.30, (400, 1)), rng.uniform(0.00, 0.15, (400, 1)))
    return np.hstack([probabilities, second]), gold


def test_per_label_thresholds_find_each_labels_separating_value():
    probabilities, gold = separable_problem()
    thresholds = tune_thresholds(probabilities, gold, "per_label", "macro_f1")
    for label in (0, 1):  # above every negative, at or below every positive (ties go to the lowest grid value)
        scores = probabilities[:, label]
        assert scores[gold[:, label] == 0].max() < thresholds[label] <= scores[gold[:, label] == 1].min()
    predicted = (probabilities >= thresholds).astype(int)
    assert f1_score(gold, predicted, average="macro") == 1.0
    micro = tune_thresholds(probabilities, gold, "per_label", "micro_f1")
    assert f1_score(gold, (probabilities >= micro).astype(int), average="micro") == 1.0


def test_a_global_threshold_is_one_value_and_no_better_than_per_label():
    probabilities, gold = separable_problem()
    shared = tune_thresholds(probabilities, gold, "global", "macro_f1")
    assert len(set(shared.tolist())) == 1
    assert (f1_score(gold, (probabilities >= shared).astype(int), average="macro")
            < f1_score(gold, (probabilities >= tune_thresholds(probabilities, gold)).astype(int), average="macro"))


def test_multilabel_metrics_agree_with_scikit_learn_and_count_the_errors():
    gold = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    predicted = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 1]])
    probabilities = np.array([[0.9, 0.2, 0.4], [0.1, 0.8, 0.3], [0.7, 0.4, 0.6], [0.2, 0.1, 0.9]])
    m = multilabel_metrics(gold, predicted, probabilities, ["a", "b", "c"])
    assert m["accuracy"] == 0.5  # rows 2 and 4 are entirely right
    assert m["hamming_loss"] == pytest.approx(3 / 12)
    for average in ("micro", "macro", "samples"):
        assert m[f"{average}_f1"] == pytest.approx(f1_score(gold, predicted, average=average))
    assert m["mean_ap"] == pytest.approx(average_precision_score(gold, probabilities, average="macro"))
    assert (m["per_class"]["c"]["false_positives"], m["per_class"]["c"]["false_negatives"]) == (1, 1)
    assert (m["per_class"]["b"]["false_positives"], m["per_class"]["b"]["false_negatives"]) == (0, 1)


def test_the_decision_thresholds_every_label_and_a_fixed_one_overrides_them():
    decision = Decision(True, np.array([0.2, 0.8], np.float32))
    probabilities = decision.probabilities(np.array([[0.0, 0.0], [2.0, 2.0]], np.float32))  # 0.5 and 0.88
    assert decision.predict(probabilities).tolist() == [[1, 0], [1, 1]]
    assert decision.with_threshold(0.6).predict(probabilities).tolist() == [[0, 0], [1, 1]]
    from common.errors import UserError
    with pytest.raises(UserError, match="threshold=0.3 is for multi-label checkpoints"):
        Decision().with_threshold(0.3)


# ---- a real run and what reads its checkpoint


def test_training_tunes_thresholds_and_reports_the_multi_label_metrics(multilabel_run):
    run_dir, stdout = multilabel_run
    assert "multi-label: 4 sigmoid outputs, binary cross-entropy; thresholds tuned on validation" in stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("micro_f1", "macro_f1", "samples_f1", "mean_ap", "hamming_loss", "accuracy"):
        assert key in metrics["test"] and key in metrics["best_validation"] or key == "hamming_loss"
    assert metrics["test"]["macro_f1"] > 0.6  # one word per label: a working multi-label loop learns it
    assert set(metrics["thresholds"]) == set(LABELS) and set(metrics["test_at_fixed_threshold"]) == {"0.3", "0.5"}
    info = json.loads((run_dir / "checkpoints" / "best" / "classifier.json").read_text())
    assert info["multi_label"] and info["thresholds"] == [metrics["thresholds"][name] for name in LABELS]
    assert set(info["loss_weights"]) == set(LABELS)  # loss.pos_weight=balanced, recorded
    test = read_predictions(run_dir / "predictions_test.npz")
    assert test.multi_label and test.gold.shape == test.predicted.shape == (60, 4)
    assert np.array_equal(test.predicted, (test.probabilities >= test.thresholds).astype(np.uint8))
    assert f1_score(test.gold, test.predicted, average="macro", zero_division=0) == pytest.approx(
        metrics["test"]["macro_f1"])
    assert (run_dir / "analysis" / "label_errors.png").is_file()


def test_evaluate_reads_the_multi_label_checkpoint_and_a_fixed_threshold_changes_the_decisions(
        multilabel_run, multilabel_data, tmp_path):
    run_dir, _ = multilabel_run
    checkpoint = run_dir / "checkpoints" / "best"
    reports = {}
    for name, extra in (("tuned", []), ("fixed", ["threshold=0.95"])):
        result = run_script("evaluate.py", f"checkpoint={checkpoint}", "precision=fp32", f"out={tmp_path / name}.json",
                            f"predictions={tmp_path / name}.npz", *extra)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "micro-F1" in result.stdout and "gold-missed" in result.stdout
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert reports["tuned"]["macro_f1"] == pytest.approx(metrics["test"]["macro_f1"], abs=1e-6)
    assert read_predictions(tmp_path / "fixed.npz").thresholds.tolist() == pytest.approx([0.95] * 4)
    assert (reports["fixed"]["labels_per_text"]["predicted"] < reports["tuned"]["labels_per_text"]["predicted"])


def test_predict_prints_every_label_over_its_threshold(multilabel_run):
    run_dir, _ = multilabel_run
    checkpoint = run_dir / "checkpoints" / "best"
    result = run_script("predict.py", f"checkpoint={checkpoint}", input="i am so happy and angry today\n")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout)
    info = json.loads((checkpoint / "classifier.json").read_text())
    assert set(record) == {"text", "labels", "probs"} and set(record["probs"]) == set(LABELS)
    over = [name for name, t in zip(info["labels"], info["thresholds"]) if record["probs"][name] >= t]
    assert sorted(record["labels"]) == sorted(over)


def test_the_hf_export_gives_transformers_the_same_sigmoid_scores(multilabel_run, tmp_path):
    transformers = pytest.importorskip("transformers")
    run_dir, _ = multilabel_run
    checkpoint, out = run_dir / "checkpoints" / "best", tmp_path / "hf"
    result = run_script("-m", "model.export", f"checkpoint={checkpoint}", "format=hf", f"out={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and set(config["label_thresholds"]) == set(LABELS)
    texts = ["i am so happy and angry today", "scared"]
    predicted = run_script("predict.py", f"checkpoint={checkpoint}", "pack_weights=false",
                           input="".join(t + "\n" for t in texts))
    ours = [json.loads(line)["probs"] for line in predicted.stdout.splitlines()]
    classify = transformers.pipeline("text-classification", model=str(out), top_k=None)
    for mine, theirs in zip(ours, classify(texts)):
        assert {d["label"]: d["score"] for d in theirs} == pytest.approx(mine, abs=1e-4)


def test_the_onnx_export_carries_the_thresholds_and_the_same_logits(multilabel_run, tmp_path):
    pytest.importorskip("onnxruntime")
    run_dir, _ = multilabel_run
    checkpoint, out = run_dir / "checkpoints" / "best", tmp_path / "onnx"
    result = run_script("-m", "model.export", f"checkpoint={checkpoint}", "format=onnx", f"out={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads((checkpoint / "classifier.json").read_text())
    assert json.loads((out / "thresholds.json").read_text()) == dict(zip(info["labels"], info["thresholds"]))
    text = "i am so happy and angry today"
    logits = onnx_logits(out, checkpoint, text)
    predicted = run_script("predict.py", f"checkpoint={checkpoint}", "pack_weights=false", f"text={text}")
    ours = json.loads(predicted.stdout)["probs"]
    assert dict(zip(info["labels"], torch.sigmoid(torch.from_numpy(logits)).tolist())) == pytest.approx(ours, abs=1e-4)


def test_evaluate_baselines_for_a_multi_label_checkpoint_tune_their_thresholds_on_validation(multilabel_run, tmp_path):
    run_dir, _ = multilabel_run
    result = run_script("evaluate.py", f"checkpoint={run_dir / 'checkpoints' / 'best'}", "precision=fp32",
                        "baselines=true", f"out={tmp_path / 'report.json'}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {row["name"]: row for row in json.loads((tmp_path / "report.json").read_text())["baselines"]}
    assert len(rows) == 3 and any(name.startswith("most frequent label") for name in rows)
    tuned = next(row for name, row in rows.items() if "tuned on validation" in name)
    assert tuned["macro_f1"] > 0.5  # one word per label: TF-IDF finds it too
    assert "micro-F1" in result.stdout and "subset acc" in result.stdout


def test_a_multi_label_head_starts_at_the_label_frequencies():
    from model.encoders.bert import BertConfig, BertEncoder
    from model.classifier import BERTClassifier

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    model = BERTClassifier(BertEncoder(config), 3)
    model.start_at_label_frequencies(np.array([0.5, 0.04, 0.2]))
    assert torch.sigmoid(model.head.bias).tolist() == pytest.approx([0.5, 0.04, 0.2], abs=1e-6)
