"""The label audit (research/confident_learning.py, research/audit.py): known label flips planted in
synthetic data are found with high precision and recall from out-of-fold probabilities of a real
classifier, and the command writes its CSV, JSON, heat map and TensorBoard entries."""
import csv
import json

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.naive_bayes import GaussianNB

from evaluation.predictions import Predictions, write_predictions
from research.audit import ISSUES_CSV, JOINT_PNG, NOISE_JSON, main as audit_main
from research.confident_learning import audit_labels, audit_multi_label, calibrate, class_thresholds, confident_joint
from research.folds import EXAMPLES_FILE, PREDICTIONS_FILE

CLASSES = ["ant", "bee", "cat", "dog"]


def planted(seed: int, n=1200, flip_rate=0.1):
    """Four Gaussian classes, 10% of the labels moved to another class at random, and the out-of-fold
    (5-fold) probabilities of a Gaussian naive Bayes classifier trained on the noisy labels."""
    features, true = make_blobs(n_samples=n, centers=len(CLASSES), cluster_std=2.0, n_features=5, random_state=seed)
    rng = np.random.default_rng(seed)
    flipped = rng.random(n) < flip_rate
    given = true.copy()
    given[flipped] = (true[flipped] + rng.integers(1, len(CLASSES), flipped.sum())) % len(CLASSES)
    probabilities = cross_val_predict(GaussianNB(), features, given, cv=5, method="predict_proba")
    return true, given, flipped, probabilities


@pytest.mark.parametrize("seed", [0, 2])
def test_planted_flips_are_found_with_high_precision_and_recall(seed):
    true, given, flipped, probabilities = planted(seed)
    audit = audit_labels(probabilities, given)
    found = audit.issues & flipped
    # seed 0: precision 0.98, recall 0.96; seed 2's classes overlap more: 0.82, 0.87
    assert found.sum() / audit.issues.sum() >= 0.8  # precision
    assert found.sum() / flipped.sum() >= 0.85  # recall
    assert np.mean(audit.suggested[found] == true[found]) >= 0.95  # the suggestion is the true label
    planted_rates = [np.mean(flipped[given == j]) for j in range(len(CLASSES))]
    np.testing.assert_allclose(audit.noise_rates(), planted_rates, atol=0.05)
    ranked = audit.ranked_issues()
    assert set(ranked) == set(np.flatnonzero(audit.issues))
    assert np.all(np.diff(audit.self_confidence[ranked]) >= 0)


def test_clean_labels_give_few_flags():
    features, true = make_blobs(n_samples=800, centers=3, cluster_std=1.0, n_features=4, random_state=5)
    probabilities = cross_val_predict(GaussianNB(), features, true, cv=5, method="predict_proba")
    assert audit_labels(probabilities, true).issues.sum() <= 4


def test_planted_flips_of_single_labels_in_multi_label_data_are_found():
    rng = np.random.default_rng(0)
    n, labels = 1500, 5
    features = rng.normal(size=(n, 8))
    true = (features @ (1.5 * rng.normal(size=(8, labels))) + 0.5 * rng.normal(size=(n, labels)) > 0.5).astype(int)
    flipped = rng.random((n, labels)) < 0.05
    given = np.where(flipped, 1 - true, true)
    probabilities = np.stack([cross_val_predict(LogisticRegression(max_iter=1000), features, given[:, k], cv=5,
                                                method="predict_proba")[:, 1] for k in range(labels)], 1)
    issues = np.stack([a.issues for a in audit_multi_label(probabilities, given)], 1)
    found = (issues & flipped).sum()
    assert found / issues.sum() >= 0.8 and found / flipped.sum() >= 0.8


def test_thresholds_and_confident_joint_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9]])
    given = np.array([0, 0, 0, 1, 1, 1])
    thresholds = class_thresholds(probabilities, given)
    np.testing.assert_allclose(thresholds, [(0.9 + 0.7 + 0.2) / 3, (0.6 + 0.4 + 0.9) / 3])  # 0.6, 0.633
    # example by example: 0 -> 0 (0.9 >= 0.6); 1 -> 0; 2 -> 1 (0.8 >= 0.633, 0.2 < 0.6); 3 -> none
    # (0.4 < 0.6, 0.6 < 0.633); 4 -> 0; 5 -> 1
    joint = confident_joint(probabilities, given, thresholds)
    np.testing.assert_array_equal(joint, [[2, 1], [1, 1]])
    # rows rescaled to the 3 examples given each label, then to sum 1
    np.testing.assert_allclose(calibrate(joint, given), [[2 / 6, 1 / 6], [1.5 / 6, 1.5 / 6]])
    audit = audit_labels(probabilities, given)
    # pruning takes round(6 * 1/6) = 1 example of given 0 (largest p(1) - p(0): example 2) and
    # round(6 * 1.5/6) = 2 of given 1 (examples 4 and 3), of which example 3's argmax is its given label
    np.testing.assert_array_equal(np.flatnonzero(audit.issues), [2, 4])


@pytest.fixture
def out_of_fold_dir(tmp_path):
    true, given, flipped, probabilities = planted(0, n=400)
    directory = tmp_path / "all_folds"
    directory.mkdir()
    write_predictions(directory / PREDICTIONS_FILE, Predictions(
        np.arange(len(given)), given, probabilities.argmax(1), probabilities, np.log(probabilities), CLASSES))
    texts = [f"text {i} truly {CLASSES[t]}" for i, t in enumerate(true)]
    (directory / EXAMPLES_FILE).write_text("".join(
        json.dumps({"index": i, "fold": i % 5, "label": CLASSES[g], "text": t}) + "\n"
        for i, (g, t) in enumerate(zip(given, texts))))
    return directory, true, given, probabilities


def test_audit_command_writes_the_ranked_csv_the_report_the_heat_map_and_tensorboard(out_of_fold_dir, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    directory, true, given, probabilities = out_of_fold_dir
    audit_main([str(directory), "--show", "3"])
    out = directory / "audit"
    expected = audit_labels(probabilities, given)
    with open(out / ISSUES_CSV, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == list(expected.ranked_issues())
    for r in rows:
        i = int(r["index"])
        assert r["given"] == CLASSES[given[i]] and r["suggested"] == CLASSES[probabilities[i].argmax()]
        assert float(r["self_confidence"]) == pytest.approx(probabilities[i, given[i]], abs=1e-6)
        assert r["text"] == f"text {i} truly {CLASSES[true[i]]}" and r["fold"] == str(i % 5)
    report = json.loads((out / NOISE_JSON).read_text())
    assert report["flagged"] == len(rows) == expected.issues.sum()
    assert [report["classes"][c]["noise_rate"] for c in CLASSES] == pytest.approx(list(expected.noise_rates()))
    assert np.sum(report["confident_joint"]) <= 400
    assert (out / JOINT_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert "audit/confident_joint" in events.Tags()["images"]
    assert {f"audit/noise_rate/{c}" for c in CLASSES} <= set(events.Tags()["scalars"])
    printed = capsys.readouterr().out
    assert printed.startswith(f"{len(rows)} likely label errors flagged among 400 examples")
    first = rows[0]
    assert f"#{first['index']} given {first['given']} -> {first['suggested']}" in printed
    assert "least self-confident 3:" in printed


def test_audit_of_a_multi_label_file_flags_example_label_pairs(tmp_path):
    gold = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [1, 1], [0, 0]] * 10)
    probabilities = np.where(gold == 1, 0.9, 0.1).astype(np.float32)
    probabilities[0] = [0.05, 0.1]  # marked present, very probably absent
    write_predictions(tmp_path / "p.npz", Predictions(np.arange(len(gold)), gold, (probabilities > 0.5).astype(int),
                                                      probabilities, probabilities, ["x", "y"], multi_label=True,
                                                      thresholds=np.array([0.5, 0.5])))
    audit_main([str(tmp_path / "p.npz"), "--out", str(tmp_path / "audit")])
    with open(tmp_path / "audit" / ISSUES_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["index"], r["label"], r["given"], r["suggested"]) for r in rows] == [("0", "x", "present", "absent")]
    assert (tmp_path / "audit" / JOINT_PNG).is_file()


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "absent.npz", "no such file or directory"),
    (lambda d: d, "no predictions_out_of_fold.npz"),
])
def test_audit_refuses_a_source_in_one_line(make, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        audit_main([str(make(tmp_path))])
    err = capsys.readouterr().err.strip().splitlines()
    assert refused.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0]
