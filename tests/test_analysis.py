"""Error analysis and baselines: evaluation/analysis.py, evaluation/baselines.py, and what train.py and
evaluate.py write with them (tiny random BERT, generated data, a few steps)."""
import contextlib
import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data.build import label_ids
from data.dataset import ClassificationDataset
from data.readers import read_examples
from evaluation.analysis import highest_loss_examples, markdown_table
from evaluation.baselines import logistic_regression, most_frequent_class, tfidf_logistic_regression
from evaluation.scoring import Evaluation
from inference.batches import eval_loader, predict_logits, predict_outputs
from evaluation.metrics import classification_metrics
from model.checkpoint import load_checkpoint
from tests.conftest import run_script

LABELS = ["anger", "fear", "joy"]  # sorted names of the tiny data
EPOCHS, STEPS_PER_EPOCH = 2, 15  # 240 training examples in batches of 16


@pytest.fixture(scope="module")
def trained_run(tiny_model_dir, tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    result = run_script(
        "train.py", f"model.path={tiny_model_dir}", "data=files", f"data.train={tiny_data['train']}",
        f"data.validation={tiny_data['validation']}", f"data.test={tiny_data['test']}", "model.pooling=mean",
        f"trainer.max_epochs={EPOCHS}", "trainer.batch_size=16", "optim.lr=3e-3", "trainer.precision=fp32",
        "trainer.top_losses=5", "trainer.projector_max_examples=50", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def evaluated(trained_run, tiny_data, tmp_path_factory):
    """evaluate.py on the validation split, with analysis files and baselines, as a user runs it."""
    out = tmp_path_factory.mktemp("evaluate")
    result = run_script("evaluate.py", f"checkpoint={trained_run / 'checkpoints' / 'best'}", "split=validation",
                        "precision=fp32", f"analysis={out / 'analysis'}", "top_losses=7", "baselines=true",
                        f"out={out / 'report.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def reference_losses(checkpoint, path):
    """Per-example cross-entropy computed here, independently of evaluation/analysis.py."""
    loaded = load_checkpoint(checkpoint)
    examples = read_examples(path)
    dataset = ClassificationDataset(examples.texts, label_ids(examples, LABELS), loaded.transform)
    logits = predict_logits(loaded.model, eval_loader(dataset, 16), "cpu", contextlib.nullcontext())
    losses = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(dataset.labels), reduction="none")
    return examples, logits, losses.numpy()


def test_evaluate_writes_the_highest_loss_examples_worst_first(trained_run, evaluated, tiny_data):
    out, _ = evaluated
    examples, logits, losses = reference_losses(trained_run / "checkpoints" / "best", tiny_data["validation"])
    with open(out / "analysis" / "highest_loss.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7
    indices = [int(r["index"]) for r in rows]
    assert indices == list(np.argsort(-losses, kind="stable")[:7])
    for row, i in zip(rows, indices):
        assert float(row["loss"]) == pytest.approx(losses[i], abs=1e-4)
        assert row["text"] == examples.texts[i] and row["gold"] == examples.labels[i]
        assert row["predicted"] == LABELS[logits[i].argmax()]
        probabilities = torch.softmax(torch.from_numpy(logits[i]), 0)
        assert float(row["predicted_probability"]) == pytest.approx(probabilities.max().item(), abs=1e-4)


def test_evaluate_writes_the_confusion_matrix_png_and_tensorboard(evaluated):
    from matplotlib.image import imread
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, result = evaluated
    image = imread(out / "analysis" / "confusion_matrix.png")
    assert image.ndim == 3 and image.shape[1] > image.shape[0] > 200  # two square panels side by side
    events = EventAccumulator(str(out / "analysis" / "tensorboard"))
    events.Reload()
    assert sorted(events.Tags()["images"]) == ["calibration/validation", "validation/confusion_matrix"]
    assert "validation:00000" in (out / "analysis" / "tensorboard" / "projector_config.pbtxt").read_text()
    assert "confusion_matrix.png" in result.stdout


def test_baselines_are_printed_and_the_dummy_scores_the_majority_share(evaluated, tiny_data):
    out, result = evaluated
    report = json.loads((out / "report.json").read_text())
    majority, logreg, tfidf = report["baselines"]
    train_labels = read_file_labels(tiny_data["train"])
    top_class = LABELS[np.bincount(train_labels, minlength=3).argmax()]
    assert majority["name"] == f"most frequent class ({top_class})"
    validation = read_file_labels(tiny_data["validation"])
    assert majority["accuracy"] == pytest.approx(np.mean(validation == LABELS.index(top_class)))
    assert 0 <= logreg["accuracy"] <= 1 and "logistic regression" in logreg["name"]
    # The class words decide the class: character n-grams of the texts find them.
    assert tfidf["name"] == "logistic regression, TF-IDF of character 1-3-grams" and tfidf["accuracy"] > 0.9
    assert "most frequent class" in result.stdout and "fine-tuned model" in result.stdout


def test_baselines_without_the_pretrained_encoder_is_one_line(trained_run, tmp_path):
    result = run_script("evaluate.py", f"checkpoint={trained_run / 'checkpoints' / 'best'}", "baselines=true",
                        f"baseline_encoder={tmp_path / 'gone'}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0] == f"error: {tmp_path / 'gone'} (baseline_encoder): pretrained encoder directory not found; " \
                       "pass baseline_encoder=DIR"


def read_file_labels(path) -> np.ndarray:
    return label_ids(read_examples(path), LABELS)


def test_most_frequent_class_accuracy_is_that_class_share():
    train = np.array([2, 2, 2, 0, 1])
    evaluated = np.array([0, 2, 1, 1, 2, 0, 0, 0])
    metrics = most_frequent_class(train, evaluated, LABELS).report
    assert metrics["name"] == "most frequent class (joy)"
    assert metrics["accuracy"] == pytest.approx(2 / 8)
    assert metrics["per_class"]["joy"]["recall"] == 1.0


def test_logistic_regression_is_fitted_on_train_and_scored_on_the_evaluated_split():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 5
    train_labels, eval_labels = rng.integers(0, 3, 90), rng.integers(0, 3, 30)
    train = centres[train_labels] + rng.normal(size=(90, 8))
    evaluated = centres[eval_labels] + rng.normal(size=(30, 8))
    assert logistic_regression(train, train_labels, evaluated, eval_labels, LABELS).report["accuracy"] == 1.0
    # Scored against other labels than the ones it was fitted to: no longer perfect.
    shifted = (eval_labels + 1) % 3
    assert logistic_regression(train, train_labels, evaluated, shifted, LABELS).report["accuracy"] == 0.0


def test_tfidf_baseline_is_fitted_on_the_training_texts_in_any_script():
    words = {0: ["기쁘다", "행복해요"], 1: ["슬프다", "눈물"], 2: ["happy", "great"]}
    rng = np.random.default_rng(0)
    filler = ["오늘", "정말", "the", "day", "그리고"]

    def texts(labels):
        return [" ".join([*rng.choice(filler, 3), rng.choice(words[int(y)])]) for y in labels]

    train_labels, eval_labels = rng.integers(0, 3, 60), rng.integers(0, 3, 30)
    train, evaluated = texts(train_labels), texts(eval_labels)
    fitted = tfidf_logistic_regression(train, train_labels, evaluated, eval_labels, LABELS)
    assert fitted.report["accuracy"] == 1.0
    np.testing.assert_array_equal(fitted.probabilities.argmax(1), eval_labels)  # its predictions file's labels
    np.testing.assert_allclose(fitted.probabilities.sum(1), 1.0)
    assert tfidf_logistic_regression(train, train_labels, evaluated, (eval_labels + 1) % 3, LABELS
                                     ).report["accuracy"] == 0.0


def test_training_logs_confusion_pr_curves_table_and_projector(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained_run / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    confusion = events.Images("val/confusion_matrix")
    assert [e.step for e in confusion] == [STEPS_PER_EPOCH * k for k in range(1, EPOCHS + 1)]
    assert len(events.Images("best_validation/confusion_matrix")) == 1
    assert set(events.PluginTagToContent("pr_curves")) == {f"{tag}/pr/{name}" for tag in ("val", "best_validation")
                                                           for name in LABELS}
    assert len(events.Tensors("val/pr/joy")) == EPOCHS
    table = events.Tensors("val/highest_loss/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert table.startswith("| # | loss |") and len(table.splitlines()) == 2 + 5

    projector = trained_run / "tensorboard" / "projector_config.pbtxt"
    assert "best_validation" in projector.read_text()
    [vectors] = (trained_run / "tensorboard").glob("*/best_validation/tensors.tsv")
    rows = vectors.read_text().splitlines()
    assert len(rows) == 50 and len(rows[0].split("\t")) == 32  # capped at 50 of 60; hidden size 32
    metadata = (vectors.parent / "metadata.tsv").read_text().splitlines()
    assert metadata[0] == "gold\tpredicted\ttext" and len(metadata) == 51


def test_training_writes_the_best_checkpoints_validation_analysis(trained_run, tiny_data):
    with open(trained_run / "analysis" / "highest_loss.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    _, _, losses = reference_losses(trained_run / "checkpoints" / "best", tiny_data["validation"])
    assert [float(r["loss"]) for r in rows] == pytest.approx(sorted(losses, reverse=True)[:5], abs=1e-4)
    assert (trained_run / "analysis" / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")


def test_vectors_give_the_logits_forward_gives(trained_run, tiny_data):
    loaded = load_checkpoint(trained_run / "checkpoints" / "best")
    examples = read_examples(tiny_data["test"])
    loader = eval_loader(ClassificationDataset(examples.texts, None, loaded.transform), 16)
    plain, none = predict_outputs(loaded.model, loader, "cpu", contextlib.nullcontext())
    logits, vectors = predict_outputs(loaded.model, loader, "cpu", contextlib.nullcontext(), with_vectors=True)
    assert none is None and vectors.shape == (len(examples), 32)
    np.testing.assert_allclose(logits, plain, atol=1e-6)
    np.testing.assert_allclose(loaded.model.head(torch.from_numpy(vectors)).detach().numpy(), plain, atol=1e-5)


def test_markdown_table_survives_pipes_newlines_and_markup():
    logits = np.array([[0.0, 0.0, 5.0], [5.0, 0.0, 0.0]], dtype=np.float32)
    labels = np.array([0, 0])
    evaluation = Evaluation(classification_metrics(labels, logits.argmax(1), LABELS), logits, labels)
    rows = highest_loss_examples(evaluation, LABELS, ["a | b\nnew *line*", "fine"], 2)
    assert [r["index"] for r in rows] == [0, 1] and rows[0]["predicted"] == "joy"
    lines = markdown_table(rows).splitlines()
    assert len(lines) == 4
    assert lines[2].replace("\\|", "").count("|") == 7 and "\\*line\\*" in lines[2]
