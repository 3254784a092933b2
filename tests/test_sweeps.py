"""Sweeps as a user runs them, on a tiny random BERT: a Hydra multirun and an Optuna search finish,
the sweep summary ranks every job (failed ones included), and TensorBoard's HParams dashboard, read
through its own backend, shows one row per job with its hyperparameters and metrics."""
import csv
import json

import pytest
import yaml

from common.config import PROJECT_ROOT
from training.tracking import run_hparams
from tests.conftest import run_script


# The HParams table's metric columns: the scalar tags training/tracking.py log_hparams writes.
HPARAM_METRICS = ("best_val/accuracy", "best_val/macro_f1", "test/accuracy", "test/macro_f1")


def tiny_job_args(tiny_model_dir, tiny_data, sweep_dir, *extra):
    return ["train.py", "-m", f"model.path={tiny_model_dir}", "data=files", f"data.train={tiny_data['train']}",
            f"data.validation={tiny_data['validation']}", f"data.test={tiny_data['test']}",
            "trainer.batch_size=16", "trainer.max_steps=30", "trainer.log_every=5", "trainer.threads=1",
            f"hydra.sweep.dir={sweep_dir}", *extra]


@pytest.fixture(scope="module")
def sweep(tiny_model_dir, tiny_data, tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("sweep")
    # Mean pooling and lr 3e-3: two epochs tell the keywords apart; lr 1e-5 stays near chance.
    result = run_script(*tiny_job_args(tiny_model_dir, tiny_data, sweep_dir, "model.pooling=mean",
                                       "optim.lr=1e-5,3e-3"))
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_dir, result


def job_metrics(sweep_dir, job: str) -> dict:
    return json.loads((sweep_dir / job / "metrics.json").read_text())


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def hparams_tab(logdir) -> tuple[list, dict]:
    """What TensorBoard's HParams tab shows for `logdir`, computed by the hparams plugin's own request
    handlers over the event files: the hyperparameter columns in display order as (name, differs),
    and the rows, {run: (hparams, metrics)}."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

    events = plugin_event_multiplexer.EventMultiplexer()
    events.AddRunsFromDirectory(str(logdir))
    events.Reload()
    tb = base_plugin.TBContext(logdir=str(logdir), multiplexer=events,
                               data_provider=data_provider.MultiplexerDataProvider(events, str(logdir)))
    backend, request = backend_context.Context(tb), context.RequestContext()
    experiment = get_experiment.Handler(request, backend, "", api_pb2.GetExperimentRequest()).run()
    columns = ([api_pb2.ColParams(hparam=h.name) for h in experiment.hparam_infos]
               + [api_pb2.ColParams(metric=m.name) for m in experiment.metric_infos])
    groups = list_session_groups.Handler(request, backend, "", api_pb2.ListSessionGroupsRequest(
        col_params=columns, start_index=0, slice_size=1000, aggregation_type=api_pb2.AGGREGATION_AVG,
        allowed_statuses=[api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE,
                          api_pb2.STATUS_RUNNING])).run().session_groups
    table = {}
    for group in groups:
        hparams = {k: v.number_value if v.HasField("number_value") else v.string_value
                   for k, v in group.hparams.items()}
        table[group.name] = (hparams, {m.name.tag: m.value for m in group.metric_values})
    return [(h.name, h.differs) for h in experiment.hparam_infos], table


def test_multirun_summary_ranks_both_jobs_by_validation_accuracy(sweep):
    sweep_dir, result = sweep
    rows = read_csv(sweep_dir / "summary.csv")
    assert sorted(row["job"] for row in rows) == ["0", "1"]
    for row in rows:
        best = job_metrics(sweep_dir, row["job"])["best_validation"]
        test = job_metrics(sweep_dir, row["job"])["test"]
        assert row["status"] == "ok"
        assert float(row["val accuracy"]) == pytest.approx(best["accuracy"])
        assert float(row["test macro-F1"]) == pytest.approx(test["macro_f1"])
        assert float(row["wall s"]) > float(row["train s"]) > 0
    assert [float(row["optim.lr"]) for row in rows] == [3e-3, 1e-5]  # the only swept key; 3e-3 learns
    accuracies = [float(row["val accuracy"]) for row in rows]
    assert accuracies[0] > accuracies[1]
    markdown = (sweep_dir / "summary.md").read_text()
    assert markdown in result.stdout  # printed when the multirun ends
    assert "2 jobs, 2 completed; ranked by validation accuracy (higher is better)" in markdown


def test_summary_cli_rewrites_the_same_table(sweep):
    sweep_dir, _ = sweep
    before = (sweep_dir / "summary.md").read_text()
    (sweep_dir / "summary.md").unlink()
    result = run_script("-m", "research.sweep_summary", str(sweep_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout == before == (sweep_dir / "summary.md").read_text()


def test_hparams_tab_shows_one_row_per_job_with_its_metrics(sweep):
    sweep_dir, _ = sweep
    columns, table = hparams_tab(sweep_dir)
    assert sorted(table) == ["0/tensorboard", "1/tensorboard"]  # the curves' runs: no add_hparams sub-run
    # The tab shows the first five columns until more are ticked: the ones given on the command line
    # (trainer.batch_size, model.pooling, optim.lr) come first.
    assert columns[:3] == [("batch_size", True), ("lr", True), ("pooling", True)]
    assert sorted(name for name, _ in columns) == sorted(run_hparams_of_default_config())
    for job in ("0", "1"):
        hparams, metrics = table[f"{job}/tensorboard"]
        overrides = dict(o.split("=", 1) for o in yaml.safe_load((sweep_dir / job / ".hydra" / "overrides.yaml")
                                                                 .read_text()))
        assert hparams["lr"] == pytest.approx(float(overrides["optim.lr"]))
        assert set(hparams) == {name for name, _ in columns}  # every column filled in every row
        assert hparams["batch_size"] == 16 and hparams["data"] == "files" and hparams["pooling"] == "mean"
        assert set(metrics) == set(HPARAM_METRICS)
        logged = job_metrics(sweep_dir, job)
        assert metrics["best_val/accuracy"] == pytest.approx(logged["best_validation"]["accuracy"])
        assert metrics["best_val/macro_f1"] == pytest.approx(logged["best_validation"]["macro_f1"])
        assert metrics["test/accuracy"] == pytest.approx(logged["test"]["accuracy"])
        assert metrics["test/macro_f1"] == pytest.approx(logged["test"]["macro_f1"])


def run_hparams_of_default_config() -> dict:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return run_hparams(compose("config"))


def test_failed_job_is_listed_not_dropped(tiny_model_dir, tiny_data, tmp_path):
    result = run_script(*tiny_job_args(tiny_model_dir, tiny_data, tmp_path, "model.pooling=mean",
                                       "model.dropout=0.1,1.0", "optim.lr=3e-3"))
    assert result.returncode != 0  # Hydra ends a sweep at its first failing job
    summary = run_script("-m", "research.sweep_summary", str(tmp_path))
    assert summary.returncode == 0, summary.stderr
    rows = {row["job"]: row for row in read_csv(tmp_path / "summary.csv")}
    assert rows["0"]["status"] == "ok" and float(rows["0"]["val accuracy"]) > 0
    # failed (an exception, recorded by the callback) or incomplete (a UserError exits before it)
    assert rows["1"]["status"].startswith(("failed: ", "incomplete")) and rows["1"]["val accuracy"] == ""
    assert "1 completed" in summary.stdout


def test_summary_cli_refuses_a_directory_without_jobs(tmp_path):
    result = run_script("-m", "research.sweep_summary", str(tmp_path))
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "no Hydra jobs" in result.stderr


def test_optuna_search_minimizes_the_monitored_loss(tiny_model_dir, tiny_data, tmp_path):
    """Two trials of conf/hparams_search/emotion_optuna.yaml on the tiny data, persisted in SQLite.
    With trainer.monitor=loss the search minimizes (accuracy/macro_f1 maximize: test_configs)."""
    result = run_script(*tiny_job_args(tiny_model_dir, tiny_data, tmp_path, "hparams_search=emotion_optuna",
                                       "model.pooling=mean", "hydra.sweeper.n_trials=2", "trainer.monitor=loss",
                                       f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}"))
    assert result.returncode == 0, result.stderr[-3000:]
    optuna = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    values = [job_metrics(tmp_path, job)["best_validation"]["loss"] for job in ("0", "1")]
    assert optuna["best_value"] == pytest.approx(min(values))
    assert set(optuna["best_params"]) == {"optim.lr", "model.dropout", "scheduler.warmup_ratio",
                                          "optim.weight_decay", "trainer.max_epochs"}
    rows = read_csv(tmp_path / "summary.csv")
    assert [float(r["val loss"]) for r in rows] == sorted(values)  # lowest loss first
    assert (tmp_path / "optuna.db").stat().st_size > 0


# A sweep over optim.lr=1e-3,1e-2 and seed=1,2,3, made by hand: the job with lr 1e-2 and seed 3 failed.
SEEDED_SWEEP = {  # job: (lr, seed, val accuracy, test accuracy)
    "0": ("1e-3", 1, 0.80, 0.70), "1": ("1e-3", 2, 0.82, 0.74), "2": ("1e-3", 3, 0.84, 0.72),
    "3": ("1e-2", 1, 0.90, 0.81), "4": ("1e-2", 2, 0.86, 0.85), "5": ("1e-2", 3, None, None)}
T_975 = {2: 4.302652729749462, 1: 12.706204736174694}  # Student's t 97.5% quantile by degrees of freedom


@pytest.fixture(scope="module")
def seeded_sweep(tmp_path_factory):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    sweep_dir = tmp_path_factory.mktemp("seeded_sweep")
    (sweep_dir / "multirun.yaml").write_text("trainer:\n  monitor: accuracy\n")
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        config = compose("config", overrides=["trainer.batch_size=16"])
    for job, (lr, seed, val, test) in SEEDED_SWEEP.items():
        hydra_dir = sweep_dir / job / ".hydra"
        hydra_dir.mkdir(parents=True)
        (hydra_dir / "overrides.yaml").write_text(f"- trainer.batch_size=16\n- optim.lr={lr}\n- seed={seed}\n")
        OmegaConf.update(config, "optim.lr", float(lr))
        OmegaConf.update(config, "seed", seed)
        OmegaConf.save(config, hydra_dir / "config.yaml")
        if val is None:
            (sweep_dir / job / "job.json").write_text('{"status": "failed", "error": "RuntimeError: x"}')
            continue
        (sweep_dir / job / "job.json").write_text('{"status": "completed", "wall_seconds": 9.0}')
        metrics = {"best_validation": {"epoch": 1, "step": 10, "loss": 1 - val, "accuracy": val, "macro_f1": val - 0.1},
                   "test": {"loss": 1 - test, "accuracy": test, "macro_f1": test - 0.1, "weighted_f1": test},
                   "train_seconds": 5.0}
        (sweep_dir / job / "metrics.json").write_text(json.dumps(metrics))
    return sweep_dir


def test_jobs_differing_only_in_seed_are_summarised_as_one_configuration(seeded_sweep, capsys):
    from research.sweep_summary import main

    main([str(seeded_sweep)])
    assert capsys.readouterr().out == (seeded_sweep / "summary.md").read_text()
    groups = read_csv(seeded_sweep / "summary_groups.csv")
    # Ranked by mean validation accuracy: lr 1e-2 (0.88 over seeds 1, 2; seed 3 failed) before lr 1e-3 (0.82).
    assert [(g["optim.lr"], g["n seeds"], g["seeds"], g["jobs"]) for g in groups] == [
        ("1e-2", "2", "1 2", "3 4"), ("1e-3", "3", "1 2 3", "0 1 2")]
    # By hand: mean, std with n - 1, mean ± t_{0.975, n-1} std / sqrt(n).
    by_hand = {"1e-3": ([0.80, 0.82, 0.84], 0.82, 0.02, [0.70, 0.74, 0.72], 0.72, 0.02),
               "1e-2": ([0.90, 0.86], 0.88, 0.02 * 2 ** 0.5, [0.81, 0.85], 0.83, 0.02 * 2 ** 0.5)}
    for g in groups:
        val, val_mean, val_std, test, test_mean, test_std = by_hand[g["optim.lr"]]
        n = len(val)
        assert [float(v) for v in g["val accuracy per seed"].split()] == val
        assert float(g["val accuracy mean"]) == pytest.approx(val_mean)
        assert float(g["val accuracy std"]) == pytest.approx(val_std)
        assert float(g["val accuracy ci low"]) == pytest.approx(val_mean - T_975[n - 1] * val_std / n ** 0.5)
        assert float(g["test accuracy ci high"]) == pytest.approx(test_mean + T_975[n - 1] * test_std / n ** 0.5)
        assert float(g["test macro-F1 mean"]) == pytest.approx(test_mean - 0.1)
        assert [float(v) for v in g["test accuracy per seed"].split()] == test
    markdown = (seeded_sweep / "summary.md").read_text()
    assert "## Configurations over seeds" in markdown
    assert "| 2 | 1e-3 | 3 | 1, 2, 3 | 0.8200 ± 0.0200 [0.7703, 0.8697] |" in markdown
    assert "| 2 | 0.8000, 0.8200, 0.8400 |" in markdown  # per seed
    assert [row["status"] for row in read_csv(seeded_sweep / "summary.csv")][-1].startswith("failed")


def test_hparams_tab_shows_one_row_per_configuration_with_its_seed_statistics(seeded_sweep):
    from research.sweep_summary import write_group_hparams

    logdir = write_group_hparams(seeded_sweep)
    assert list(logdir.glob("*/events.out.tfevents.*"))
    columns, table = hparams_tab(logdir)
    assert sorted(table) == ["optim.lr=1e-2", "optim.lr=1e-3"]
    assert ("lr", True) in columns and "seed" not in {name for name, _ in columns}
    hparams, metrics = table["optim.lr=1e-3"]
    assert hparams["lr"] == pytest.approx(1e-3) and hparams["batch_size"] == 16  # from the job's config
    assert metrics["group/n_seeds"] == 3
    assert metrics["group/val_accuracy_mean"] == pytest.approx(0.82)
    assert metrics["group/val_accuracy_std"] == pytest.approx(0.02)
    assert metrics["group/test_accuracy_ci_low"] == pytest.approx(0.72 - T_975[2] * 0.02 / 3 ** 0.5)
    assert metrics["group/test_macro_f1_ci_high"] == pytest.approx(0.62 + T_975[2] * 0.02 / 3 ** 0.5)
    assert table["optim.lr=1e-2"][1]["group/n_seeds"] == 2
    write_group_hparams(seeded_sweep)  # rewritten, not appended to
    assert len(list((logdir / "optim.lr=1e-3").iterdir())) == 1


def test_a_sweep_without_seeds_has_no_configuration_table(tmp_path):
    from research.sweep_summary import write_group_hparams, write_summary

    (tmp_path / "multirun.yaml").write_text("trainer:\n  monitor: loss\n")
    for job, lr in (("0", "1e-3"), ("1", "1e-2")):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(f"- optim.lr={lr}\n")
    assert "Configurations over seeds" not in write_summary(tmp_path)
    assert write_group_hparams(tmp_path) is None and not (tmp_path / "summary_groups.csv").exists()


def test_multirun_over_seeds_ends_with_the_configuration_table(tiny_model_dir, tiny_data, tmp_path):
    result = run_script(*tiny_job_args(tiny_model_dir, tiny_data, tmp_path, "model.pooling=mean", "optim.lr=3e-3",
                                       "trainer.max_steps=10", "seed=1,2"))
    assert result.returncode == 0, result.stderr[-3000:]
    [group] = read_csv(tmp_path / "summary_groups.csv")
    assert group["n seeds"] == "2" and group["seeds"] == "1 2"
    tests = [job_metrics(tmp_path, job)["test"]["accuracy"] for job in ("0", "1")]
    assert float(group["test accuracy mean"]) == pytest.approx(sum(tests) / 2)
    _, table = hparams_tab(tmp_path / "tensorboard_groups")
    assert list(table) == ["all_seeds"] and table["all_seeds"][1]["group/n_seeds"] == 2
    assert "## Configurations over seeds" in result.stdout and "tensorboard_groups" in result.stdout


def test_one_seed_has_a_mean_but_no_interval():
    from research.sweep_summary import Interval, mean_interval

    assert mean_interval([0.5]) == Interval(0.5, None, None, None)


def test_summary_cli_imports_no_torch():
    result = run_script("-c", "import sys, research.sweep_summary; print('torch' in sys.modules)")
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
