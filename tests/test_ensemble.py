"""Ensembles from predictions files (research/ensemble.py): the mean of the runs' probabilities, written
as a predictions file that research.compare compares with a single run."""
import json

import numpy as np
import pytest

from evaluation.predictions import Predictions, predictions_path, read_predictions, write_predictions
from research.compare import main as compare_main
from research.ensemble import main as ensemble_main

LABELS = ["neg", "neu", "pos"]


def write_runs(directory, gold, noise_seeds) -> list:
    """One run directory per seed: probabilities that favour the gold label, blurred by seeded noise."""
    runs = []
    for seed in noise_seeds:
        rng = np.random.default_rng(seed)
        logits = 1.5 * np.eye(len(LABELS))[gold] + rng.normal(size=(len(gold), len(LABELS)))
        probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        run = directory / f"run{seed}"
        run.mkdir()
        write_predictions(predictions_path(run, "test"), Predictions(
            np.arange(len(gold)), gold, probabilities.argmax(1), probabilities, logits, LABELS))
        runs.append(run)
    return runs


@pytest.fixture
def runs(tmp_path):
    gold = np.random.default_rng(0).integers(0, len(LABELS), 300)
    return gold, write_runs(tmp_path, gold, [1, 2, 3, 4, 5])


def test_ensemble_averages_probabilities_and_beats_its_members(runs, tmp_path, capsys):
    gold, run_dirs = runs
    out = tmp_path / "ensemble_test.npz"
    ensemble_main([str(tmp_path / "run*"), "--out", str(out)])
    members = [read_predictions(r) for r in run_dirs]
    ensemble = read_predictions(out)
    mean = np.mean([m.probabilities for m in members], axis=0)
    np.testing.assert_allclose(ensemble.probabilities, mean, atol=1e-6)
    np.testing.assert_array_equal(ensemble.predicted, mean.argmax(1))
    np.testing.assert_array_equal(ensemble.gold, gold)
    softmax = np.exp(ensemble.logits) / np.exp(ensemble.logits).sum(1, keepdims=True)
    np.testing.assert_allclose(softmax, ensemble.probabilities, atol=1e-5)
    accuracy = np.mean(ensemble.predicted == gold)
    assert accuracy > max(np.mean(m.predicted == gold) for m in members)  # independent noise averages out
    printed = capsys.readouterr().out
    assert printed.startswith("5 runs, test split, 300 examples")
    assert "ensemble (mean probabilities)" in printed and f"{accuracy:.4f}" in printed


def test_compare_reads_the_ensemble_like_any_run(runs, tmp_path, capsys):
    gold, run_dirs = runs
    out = tmp_path / "ensemble_test.npz"
    ensemble_main([",".join(map(str, run_dirs)), "--out", str(out)])
    compare_main([str(run_dirs[0]), str(out), "--resamples", "300", "--out", str(tmp_path / "c.json")])
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["metrics"]["accuracy"]["b"] == pytest.approx(np.mean(read_predictions(out).predicted == gold))
    assert result["metrics"]["accuracy"]["difference_points"] > 0 and result["mcnemar"][0]["only_b_right"] > 0


@pytest.mark.parametrize("break_it, message", [
    ("one run", "an ensemble needs at least two"),
    ("other gold", "have different gold labels"),
    ("multi-label", "multi-label predictions"),
])
def test_runs_that_cannot_be_averaged_are_refused_in_one_line(break_it, message, runs, tmp_path, capsys):
    gold, run_dirs = runs
    spec = ",".join(map(str, run_dirs[:2]))
    if break_it == "one run":
        spec = str(run_dirs[0])
    elif break_it == "other gold":
        (other,) = write_runs(tmp_path, (gold + 1) % len(LABELS), [9])
        spec += f",{other}"
    else:
        multi = tmp_path / "multi.npz"
        hot = np.eye(len(LABELS))[gold].astype(int)
        write_predictions(multi, Predictions(np.arange(len(gold)), hot, hot, hot * 0.9, hot, LABELS, multi_label=True,
                                             thresholds=np.full(len(LABELS), 0.5)))
        spec += f",{multi}"
    with pytest.raises(SystemExit) as refused:
        ensemble_main([spec, "--out", str(tmp_path / "e.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert refused.value.code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "e.npz").exists()
