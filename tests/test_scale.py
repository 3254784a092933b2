"""Scale without surprise: 1,000 classes train with the analysis on (its images draw the classes with the most
errors, with a warning, instead of a figure that grows with the class count), and CSV/TSV texts longer than
csv's default 128 KiB field limit read as they do in JSONL."""
import json
import logging
import random

import numpy as np
import pytest
from PIL import Image

from data.readers import read_examples
from tests.conftest import FILLER, write_jsonl
from tests.test_loop import composed
from train import train

CLASSES = 1000


@pytest.fixture(scope="module")
def thousand_classes(tmp_path_factory):
    directory, rng = tmp_path_factory.mktemp("thousand_classes"), random.Random(0)
    rows = lambda n: [{"text": " ".join(rng.sample(FILLER, 4)), "label": f"c{i % CLASSES:04d}"}  # noqa: E731
                      for i in range(n)]
    return {split: write_jsonl(directory / f"{split}.jsonl", rows(n))
            for split, n in [("train", CLASSES), ("validation", 300), ("test", 300)]}


def test_a_thousand_classes_train_with_analysis_and_capped_figures(tiny_model_dir, thousand_classes, tmp_path,
                                                                     caplog, monkeypatch):
    drawn = 8  # fewer than the default 30: each drawing of 30 x 30 annotated cells takes seconds
    monkeypatch.setattr("evaluation.analysis.MAX_DRAWN_CLASSES", drawn)
    with caplog.at_level(logging.WARNING):
        train(composed(tiny_model_dir, thousand_classes, "trainer.analysis=true", "trainer.max_steps=2",
                       "trainer.max_epochs=1", "trainer.batch_size=64", "trainer.projector_max_examples=100"),
              tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["test_per_class"]) == CLASSES  # the metrics keep every class
    assert f"1000 classes: the error images and PR curves show the {drawn} with the most errors" in caplog.text
    width, height = Image.open(tmp_path / "analysis" / "confusion_matrix.png").size
    assert height < 120 * (0.55 * drawn + 1.5) + 1  # the figure's side for 8 classes; 1,000 would be 66,000 px


@pytest.mark.parametrize("suffix, separator", [(".csv", ","), (".tsv", "\t")])
def test_texts_over_the_csv_field_limit_read(suffix, separator, tmp_path):
    long_text = "word " * 60_000  # 300 KB, over csv's 131,072-character default
    path = tmp_path / f"long{suffix}"
    path.write_text(f"text{separator}label\n{long_text}{separator}a\nshort{separator}b\n", encoding="utf-8")
    examples = read_examples(path)
    assert examples.texts == [long_text, "short"] and examples.labels == ["a", "b"]


def test_most_errors_keeps_every_class_up_to_the_cap():
    from evaluation.analysis import most_errors

    assert most_errors(np.arange(5)).tolist() == [0, 1, 2, 3, 4]
    errors = np.zeros(100)
    errors[[3, 50, 97]] = [5, 9, 1]
    assert most_errors(errors, limit=2).tolist() == [3, 50]  # the two with most errors, in id order


def test_the_data_report_draws_the_most_frequent_classes_and_evaluate_prints_no_huge_matrix(tmp_path, caplog):
    """data.report's figures of 1,000 classes (a 1,200-inch bar chart, a 550-inch heat map before) and
    evaluate's printed report (a 1,000-column confusion matrix)."""
    from data.report import save_plots
    from evaluation.metrics import classification_metrics, format_report

    labels = [f"c{i:04d}" for i in range(CLASSES)]
    counts = list(range(CLASSES))  # class i has i texts: the 30 drawn are the last 30
    split = {"class_counts": counts, "lengths": [5, 7, 9], "length_percentiles": {99: 9},
             "co_occurrence": np.diag(counts).tolist()}
    report = {"splits": {"train": split}, "labels": labels, "multi_label": True, "max_len": 16}
    with caplog.at_level(logging.WARNING):
        written = save_plots(report, tmp_path, "thousand")
    assert "1000 classes: the figures show the 30 most frequent in training" in caplog.text
    for path in written:
        width, height = Image.open(path).size
        assert width < 5000 and height < 5000, path
    truth = np.arange(300) % CLASSES
    printed = format_report(classification_metrics(truth, truth, labels), labels)
    assert "confusion matrix: 1000 classes, too many to print" in printed
    assert len(printed.splitlines()) < CLASSES + 20  # the per-class table, not a 1,000 x 1,000 matrix
