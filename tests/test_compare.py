"""Significance of the difference between two runs, or two seed groups, from hand-made predictions
whose disagreements are known, checked against hand computations."""
import json
from math import comb

import numpy as np
import pytest
from scipy.stats import ttest_ind

from research.compare import compare, main, read_side, sentence
from evaluation.metrics import classification_metrics
from evaluation.predictions import Predictions, predictions_path, write_predictions
from tests.conftest import run_script

LABELS = ["negative", "neutral", "positive"]
GOLD = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1])  # 20 examples


def predictions(predicted, gold=GOLD, labels=LABELS) -> Predictions:
    predicted = np.asarray(predicted)
    logits = np.eye(len(labels), dtype=np.float32)[predicted] * 3
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return Predictions(np.arange(len(gold)), gold, predicted, probabilities, logits, labels)


def wrong_on(examples) -> np.ndarray:
    """GOLD, except one class further on the given examples."""
    predicted = GOLD.copy()
    predicted[list(examples)] = (GOLD[list(examples)] + 1) % len(LABELS)
    return predicted


# A wrong on 8 examples, B on 2: only A right on 1 (b), only B right on 7 (c), both wrong on 1.
A_PREDICTED = wrong_on([0, 1, 2, 3, 4, 5, 6, 7])
B_PREDICTED = wrong_on([7, 19])


def write_run(run_dir, predicted, seed=None, **kwargs):
    """A run directory as train.py leaves it, for what research.compare reads: predictions and the seed."""
    run_dir.mkdir(parents=True)
    write_predictions(predictions_path(run_dir, "test"), predictions(predicted, **kwargs))
    if seed is not None:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "config.yaml").write_text(f"seed: {seed}\n")
    return run_dir


@pytest.fixture
def two_runs(tmp_path):
    return write_run(tmp_path / "a", A_PREDICTED), write_run(tmp_path / "b", B_PREDICTED)


def compared(a, b, resamples=2000, seed=0) -> dict:
    return compare(read_side(str(a), "test"), read_side(str(b), "test"), resamples, seed)


def test_accuracy_difference_and_mcnemar_match_a_hand_computation(two_runs):
    result = compared(*two_runs)
    accuracy = result["metrics"]["accuracy"]
    assert accuracy["a"] == 12 / 20 and accuracy["b"] == 18 / 20
    assert accuracy["difference_points"] == pytest.approx(30.0)
    [pair] = result["mcnemar"]
    assert (pair["only_a_right"], pair["only_b_right"]) == (1, 7)
    # exact two-sided: 2 * P(X <= 1), X ~ binomial(8, 1/2)
    assert pair["p"] == pytest.approx(2 * (comb(8, 0) + comb(8, 1)) / 2 ** 8) == pytest.approx(0.0703125)


def test_macro_f1_is_the_one_engine_metrics_reports(two_runs):
    macro_f1 = compared(*two_runs)["metrics"]["macro_f1"]
    for side, predicted in (("a", A_PREDICTED), ("b", B_PREDICTED)):
        assert macro_f1[side] == pytest.approx(classification_metrics(GOLD, predicted, LABELS)["macro_f1"])


def test_bootstrap_interval_holds_the_difference_and_repeats_with_its_seed(two_runs):
    first, again, other = compared(*two_runs, seed=0), compared(*two_runs, seed=0), compared(*two_runs, seed=1)
    for metric in ("accuracy", "macro_f1"):
        low, high = first["metrics"][metric]["ci_points"]
        assert low < first["metrics"][metric]["difference_points"] < high
        assert first["metrics"][metric] == again["metrics"][metric]
    assert first["metrics"]["accuracy"]["ci_points"] != other["metrics"]["accuracy"]["ci_points"]
    # 30 points on 20 examples: some resamples reach 0, so p is small but not the minimum 2 / (1 + 2000).
    assert 2 / 2001 < first["metrics"]["accuracy"]["p_bootstrap"] < 0.1


def test_identical_predictions_differ_by_nothing(tmp_path):
    a, b = write_run(tmp_path / "a", A_PREDICTED), write_run(tmp_path / "b", A_PREDICTED)
    result = compared(a, b)
    for metric in result["metrics"].values():
        assert metric["difference_points"] == 0 and metric["ci_points"] == [0, 0]
        assert metric["p_bootstrap"] == 1 and not metric["significant"]
    assert result["mcnemar"][0] == {"a": str(a / "predictions_test.npz"), "b": str(b / "predictions_test.npz"),
                                    "only_a_right": 0, "only_b_right": 0, "p": 1.0}


def test_sentence_reads_as_in_a_paper():
    assert sentence(0.6, -0.2, 1.4, 0.13) == "+0.6 points, 95% CI [\u22120.2, 1.4], p = 0.13: not significant"
    assert (sentence(-2.04, -3.5, -0.61, 0.0004)
            == "\u22122.0 points, 95% CI [\u22123.5, \u22120.6], p < 0.001: significant")
    assert sentence(1.0, 0.01, 2.0, 0.0496).endswith("p = 0.0496: significant")  # not "0.05"


def test_cli_prints_the_table_and_writes_json(two_runs, tmp_path):
    a, b = two_runs
    result = run_script("-m", "research.compare", str(a), str(b / "predictions_test.npz"), "--resamples", "500",
                        "--out", str(tmp_path / "out.json"))
    assert result.returncode == 0, result.stderr
    assert "accuracy  0.6000  0.9000  +30.00" in result.stdout
    assert "b = 1, c = 7, p = 0.07" in result.stdout
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["split"] == "test" and written["resamples"] == 500
    assert f"accuracy: {written['metrics']['accuracy']['sentence']}" in result.stdout


@pytest.mark.parametrize("other, message", [
    (dict(gold=wrong_on([3])), "different gold labels on 1 of 20 examples (first: example 3)"),
    (dict(gold=GOLD[:10]), "different numbers of examples: 20 vs 10"),
    (dict(labels=["neg", "neu", "pos"]), "different label names"),
])
def test_runs_on_other_examples_are_refused_in_one_line(tmp_path, other, message):
    a = write_run(tmp_path / "a", A_PREDICTED)
    b = write_run(tmp_path / "b", (other.get("gold", GOLD) + 1) % 3, **other)
    result = run_script("-m", "research.compare", str(a), str(b))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and message in result.stderr


def test_multi_label_predictions_are_refused(tmp_path):
    path = tmp_path / "multi.npz"
    gold = np.eye(3, dtype=np.uint8)[GOLD]
    write_predictions(path, Predictions(np.arange(20), gold, gold, gold.astype(np.float32), gold.astype(np.float32),
                                        LABELS, multi_label=True, thresholds=np.full(3, 0.5)))
    result = run_script("-m", "research.compare", str(path), str(path))
    assert result.returncode == 2 and "multi-label" in result.stderr and result.stderr.count("\n") == 1


def seed_groups(tmp_path):
    """A: three seeds wrong on 8, 6, 7 examples; B: three seeds wrong on 2, 3, 1, on other examples each."""
    a = [write_run(tmp_path / "A" / str(s), wrong_on(range(s, s + n)), seed=s) for s, n in zip((0, 1, 2), (8, 6, 7))]
    b = [write_run(tmp_path / "B" / str(s), wrong_on(range(19 - n, 19)), seed=s) for s, n in zip((0, 1, 2), (2, 3, 1))]
    return a, b


def test_seed_groups_compare_means_over_their_runs(tmp_path, capsys):
    a_dirs, b_dirs = seed_groups(tmp_path)
    a_spec, b_spec = ",".join(str(d) for d in a_dirs), str(tmp_path / "B" / "[012]")  # a list and a glob
    result = compare(read_side(a_spec, "test"), read_side(b_spec, "test"), 1000, 0)
    accuracy = result["metrics"]["accuracy"]
    a_values, b_values = [12 / 20, 14 / 20, 13 / 20], [18 / 20, 17 / 20, 19 / 20]
    assert accuracy["a_runs"] == pytest.approx(a_values) and accuracy["b_runs"] == pytest.approx(b_values)
    assert accuracy["difference_points"] == pytest.approx(100 * (np.mean(b_values) - np.mean(a_values)))
    assert accuracy["a_std"] == pytest.approx(np.std(a_values, ddof=1))
    assert accuracy["p_welch"] == pytest.approx(ttest_ind(b_values, a_values, equal_var=False).pvalue)
    low, high = accuracy["ci_points"]
    assert low < accuracy["difference_points"] < high
    assert [r["seed"] for r in result["b"]] == [0, 1, 2]
    assert len(result["mcnemar"]) == 3  # seed 0 with seed 0, ...
    main([a_spec, b_spec, "--resamples", "200"])
    out = capsys.readouterr().out
    assert "3 runs, seeds 0, 1, 2" in out and "A seed 1 vs B seed 1" in out and "p (Welch, runs)" in out


def test_groups_of_different_sizes_skip_mcnemar(tmp_path):
    a_dirs, b_dirs = seed_groups(tmp_path)
    result = compare(read_side(f"{a_dirs[0]},{a_dirs[1]}", "test"), read_side(str(b_dirs[0]), "test"), 200, 0)
    assert result["mcnemar"] == [] and result["metrics"]["accuracy"]["p_welch"] is None


def test_sweep_groups_are_chosen_by_overrides_or_row(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    (sweep).mkdir()
    (sweep / "multirun.yaml").write_text("trainer:\n  monitor: accuracy\n")
    for job, (lr, seed, wrong) in enumerate([("1e-3", 1, 8), ("1e-3", 2, 6), ("1e-2", 1, 2), ("1e-2", 2, 3)]):
        job_dir = write_run(sweep / str(job), wrong_on(range(wrong)), seed=seed)
        (job_dir / ".hydra" / "overrides.yaml").write_text(f"- optim.lr={lr}\n- seed={seed}\n")
        accuracy = 1 - wrong / 20
        (job_dir / "metrics.json").write_text(json.dumps({"best_validation": {"accuracy": accuracy, "macro_f1": 0},
                                                          "test": {"accuracy": accuracy, "macro_f1": 0}}))
    main(["--sweep", str(sweep), "optim.lr=1e-3", "1", "--resamples", "200"])  # row 1: the best, lr 1e-2
    out = capsys.readouterr().out
    assert "accuracy  0.6500 ± 0.0707  0.8750 ± 0.0354  +22.50" in out
    with pytest.raises(SystemExit) as exit:
        main(["--sweep", str(sweep), "optim.lr=1e-4", "1"])
    assert exit.value.code == 2 and "matches 0 configurations" in capsys.readouterr().err
