"""A 5-fold cross-validation sweep as a user runs it (`train.py -m data.folds=5 data.fold=0,1,2,3,4`) on a
tiny random BERT: the sweep summary groups the folds into one configuration with its interval, and
the folds' validation predictions are joined into one out-of-fold file over the training pool."""
import json
import shutil

import numpy as np
import pytest
from omegaconf import OmegaConf

from common.errors import UserError
from data.build import read_splits
from evaluation.predictions import predictions_path, read_predictions
from research.compare import main as compare_main
from research.ensemble import main as ensemble_main
from research.folds import EXAMPLES_FILE, OUT_DIR, PREDICTIONS_FILE, main as folds_main, write_out_of_fold
from tests.conftest import run_script
from tests.test_sweeps import job_metrics, read_csv, tiny_job_args

FOLDS = 5


@pytest.fixture(scope="module")
def fold_sweep(tiny_model_dir, tiny_data, tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("fold_sweep")
    result = run_script(*tiny_job_args(tiny_model_dir, tiny_data, sweep_dir, "model.pooling=mean", "optim.lr=3e-3",
                                       "trainer.max_steps=10", "trainer.analysis=false", f"data.folds={FOLDS}",
                                       "data.fold=" + ",".join(map(str, range(FOLDS)))))
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_dir, result


def fold_of_job(sweep_dir, job: str) -> int:
    return OmegaConf.load(sweep_dir / job / ".hydra" / "config.yaml").data.fold


def test_the_folds_are_one_configuration_with_a_cross_validation_interval(fold_sweep):
    sweep_dir, result = fold_sweep
    [group] = read_csv(sweep_dir / "summary_groups.csv")
    assert group["n folds"] == "5" and group["folds"] == "0 1 2 3 4"
    by_fold = {fold_of_job(sweep_dir, job): job_metrics(sweep_dir, job) for job in map(str, range(FOLDS))}
    val = [by_fold[f]["best_validation"]["accuracy"] for f in range(FOLDS)]
    assert [float(v) for v in group["val accuracy per fold"].split()] == pytest.approx(val)
    assert float(group["val accuracy mean"]) == pytest.approx(np.mean(val))
    assert float(group["val accuracy std"]) == pytest.approx(np.std(val, ddof=1))
    assert float(group["val accuracy ci low"]) < np.mean(val) < float(group["val accuracy ci high"])
    assert "## Configurations over folds" in result.stdout and "| 1 | 5 | 0, 1, 2, 3, 4 |" in result.stdout


def test_out_of_fold_file_has_every_pool_example_once_from_the_model_that_did_not_train_on_it(fold_sweep):
    sweep_dir, result = fold_sweep
    out = sweep_dir / OUT_DIR / "all_folds"
    joined = read_predictions(out / PREDICTIONS_FILE)
    examples = [json.loads(line) for line in (out / EXAMPLES_FILE).read_text().splitlines()]
    assert len(joined) == len(examples) == 300  # tiny_data: 240 train + 60 validation, the test split apart
    assert np.array_equal(joined.index, np.arange(300))
    assert f"300 pool examples, each predicted once, accuracy {np.mean(joined.predicted == joined.gold):.4f}" \
        in result.stdout
    folds = np.asarray([e["fold"] for e in examples])
    for job in map(str, range(FOLDS)):
        config = OmegaConf.load(sweep_dir / job / ".hydra" / "config.yaml")
        rows = np.flatnonzero(folds == config.data.fold)
        own = read_predictions(predictions_path(sweep_dir / job, "validation"))
        np.testing.assert_array_equal(joined.probabilities[rows], own.probabilities)
        np.testing.assert_array_equal(joined.gold[rows], own.gold)
        # the rows are the fold job's validation split; it trained on the other folds' rows
        splits = read_splits(config.data)
        assert [examples[i]["text"] for i in rows] == splits["validation"].texts
        assert splits["train"].texts == [e["text"] for e in examples if e["fold"] != config.data.fold]


def test_a_missing_fold_leaves_no_out_of_fold_file_and_says_which(fold_sweep, tmp_path, capsys):
    sweep_dir, _ = fold_sweep
    for job in map(str, range(FOLDS)):
        if fold_of_job(sweep_dir, job) == 3:
            continue
        shutil.copytree(sweep_dir / job, tmp_path / job, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    (tmp_path / "multirun.yaml").write_text((sweep_dir / "multirun.yaml").read_text())
    lines = write_out_of_fold(tmp_path)
    assert lines == [f"all_folds: no out-of-fold predictions: {tmp_path}: out-of-fold predictions need one "
                     "completed run of each fold 0..4; fold 3 has none"]
    assert not (tmp_path / OUT_DIR).exists()
    with pytest.raises(SystemExit) as refused:
        folds_main([str(tmp_path)])
    assert refused.value.code == 2 and capsys.readouterr().err.startswith("error: ")


def test_a_sweep_without_folds_is_refused(tmp_path):
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / ".hydra" / "overrides.yaml").write_text("- optim.lr=1e-3\n")
    (tmp_path / "multirun.yaml").write_text("trainer:\n  monitor: accuracy\n")
    with pytest.raises(UserError, match="data.fold is not swept"):
        write_out_of_fold(tmp_path)


def test_the_fold_models_ensemble_on_the_test_split_and_compare_with_one_fold_model(fold_sweep, tmp_path, capsys):
    sweep_dir, _ = fold_sweep
    out = tmp_path / "folds_test.npz"
    ensemble_main([str(sweep_dir / "[0-4]"), "--out", str(out)])
    members = [read_predictions(sweep_dir / job) for job in map(str, range(FOLDS))]
    ensemble = read_predictions(out)
    assert len(ensemble) == 60  # the held-out test split, the same for every fold model
    np.testing.assert_allclose(ensemble.probabilities, np.mean([m.probabilities for m in members], 0), atol=1e-6)
    compare_main([str(sweep_dir / "0"), str(out), "--resamples", "200"])
    printed = capsys.readouterr().out
    assert "test split, 60 examples; paired bootstrap" in printed and "McNemar" in printed


def test_evaluate_takes_the_fold_models_as_one_ensemble(fold_sweep, tmp_path):
    """checkpoint= with a glob: the members' mean probabilities, the same as research.ensemble's from their
    own test predictions (evaluate's defaults score as training did)."""
    sweep_dir, _ = fold_sweep
    offline = tmp_path / "offline.npz"
    ensemble_main([str(sweep_dir / "[0-4]"), "--out", str(offline)])
    live, out = tmp_path / "live.npz", tmp_path / "report.json"
    result = run_script("evaluate.py", f"checkpoint={sweep_dir}/*/checkpoints/best", f"predictions={live}",
                        f"out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(read_predictions(live).probabilities, read_predictions(offline).probabilities,
                               atol=1e-5)
    report = json.loads(out.read_text())
    assert report["ensemble_of"] == [str(sweep_dir / job / "checkpoints" / "best") for job in map(str, range(FOLDS))]
    assert report["accuracy"] == pytest.approx(np.mean(read_predictions(live).predicted == read_predictions(live).gold))
    assert "an ensemble of 5 checkpoints" in result.stdout and result.stdout.count(": accuracy ") == FOLDS


@pytest.mark.parametrize("option, message", [
    ("split=validation", "its validation split is not"),  # each fold model validates on another fold
    ("analysis={tmp}/analysis", "analysis= and baselines=true take one checkpoint"),
])
def test_an_ensemble_that_cannot_be_scored_is_one_line(fold_sweep, tmp_path, option, message):
    sweep_dir, _ = fold_sweep
    result = run_script("evaluate.py", f"checkpoint={sweep_dir}/0/checkpoints/best,{sweep_dir}/1/checkpoints/best",
                        option.format(tmp=tmp_path))
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1, \
        result.stderr
    assert not (tmp_path / "analysis").exists()


def test_predict_answers_with_the_mean_of_several_checkpoints(fold_sweep):
    sweep_dir, _ = fold_sweep
    members = [str(sweep_dir / job / "checkpoints" / "best") for job in ("0", "1")]
    each = []
    for checkpoint in [*members, ",".join(members)]:
        result = run_script("predict.py", f"checkpoint={checkpoint}", "text=so scared today")
        assert result.returncode == 0, result.stderr[-3000:]
        each.append(json.loads(result.stdout))
    single_a, single_b, ensemble = (np.asarray(list(r["probs"].values())) for r in each)
    np.testing.assert_allclose(ensemble, (single_a + single_b) / 2, atol=2e-6)
    assert ensemble.argmax() == list(each[2]["probs"]).index(each[2]["label"])
