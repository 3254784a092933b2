"""One table of every job of a Hydra multirun: its overrides, best-validation and test metrics, time
and outcome, best job first by the monitored metric. Written as summary.md and summary.csv in the
sweep directory.

    python -m research.sweep_summary multirun/emotion/2026-01-01_12-00-00   # any sweep directory

Seeds and cross-validation folds (`data.fold`, data/folds.py) are axes of their own: repeats of one
configuration. When either is among the swept keys (the jobs were given at least two different
values), the completed jobs whose overrides differ only in the swept repeat keys form a configuration
group, and summary.md gets a second table, one row per group, best mean validation metric first:
the group's n runs, its seeds and/or folds and, per metric, mean ± standard deviation over the runs
and the 95% confidence interval of the mean (Student's t with n - 1 degrees of freedom; none for one
run), then the per-run values. Over folds, the validation mean is the K-fold cross-validation
estimate. The same numbers go to summary_groups.csv, and one TensorBoard HParams entry per group to
tensorboard_groups/<group>/ (`tensorboard --logdir SWEEP_DIR/tensorboard_groups`). Columns and
titles name the repeat: "seed", "fold", or "run" when both are swept. Deciding by the sweep's
design rather than by how many runs have finished keeps the files from appearing halfway through a
sweep; a sweep without seeds or folds has no groups to show. A fold sweep also gets its out-of-fold
predictions (research/folds.py) when it ends.

Also a Hydra callback (conf/config.yaml, hydra.callbacks): it records each job's wall time and
outcome in the job's directory (job.json), rewrites the tables after each job of a multirun, and
prints them (and writes tensorboard_groups/) when the multirun ends.
"""
import csv
import io
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import OmegaConf

from common.errors import UserError, exit_on_user_error
from training.tracking import MONITORS

METRIC_COLUMNS = {"best epoch": ("best_validation", "epoch"), "val loss": ("best_validation", "loss"),
                  "val accuracy": ("best_validation", "accuracy"), "val macro-F1": ("best_validation", "macro_f1"),
                  "test accuracy": ("test", "accuracy"), "test macro-F1": ("test", "macro_f1"),
                  "train s": ("train_seconds",)}
# The metrics a configuration group averages over its seeds: column -> (metrics.json path, TensorBoard name).
GROUP_METRICS = {"val accuracy": (("best_validation", "accuracy"), "val_accuracy"),
                 "val macro-F1": (("best_validation", "macro_f1"), "val_macro_f1"),
                 "test accuracy": (("test", "accuracy"), "test_accuracy"),
                 "test macro-F1": (("test", "macro_f1"), "test_macro_f1")}
SEED_KEY = "seed"
# Override keys whose values repeat one configuration rather than make another -> what one repeat is called.
REPEAT_KEYS = {SEED_KEY: "seed", "data.fold": "fold"}
GROUPS_CSV, GROUPS_TENSORBOARD = "summary_groups.csv", "tensorboard_groups"


@dataclass
class Job:
    name: str  # directory below the sweep's: the job number (hydra.sweep.subdir), or a run's path
    overrides: list[str]
    status: str  # ok | failed: <error> | incomplete (still running, killed, or stopped by a config error)
    metrics: dict = field(default_factory=dict)  # the job's metrics.json, empty unless ok
    wall_seconds: float | None = None  # from job.json, written by the callback

    def override_values(self) -> dict:
        return dict(o.partition("=")[::2] for o in self.overrides)

    def seed(self) -> str | None:
        return self.value(SEED_KEY)

    def value(self, key: str) -> str | None:
        return next((v for k, v in self.override_values().items() if override_key(k) == key), None)


def override_key(override: str) -> str:
    """'+seed=3' -> 'seed': Hydra's add/delete prefixes are not part of the key."""
    return override.partition("=")[0].lstrip("+~")


def read_job(name: str, job_dir: Path) -> Job:
    overrides = [str(o) for o in OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")]
    record, metrics = read_json(job_dir / "job.json"), read_json(job_dir / "metrics.json")
    if metrics:
        return Job(name, overrides, "ok", metrics, record.get("wall_seconds"))
    if record.get("status") == "failed":
        return Job(name, overrides, f"failed: {record.get('error', '')}", wall_seconds=record.get("wall_seconds"))
    return Job(name, overrides, "incomplete")


def read_json(path: Path) -> dict:
    """{} when absent, or not yet completely written (the table may be made while jobs run)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def job_order(job: Job):
    """Job 2 before job 10; other names (single runs' directories) after, alphabetically."""
    return (0, int(job.name), "") if job.name.isdigit() else (1, 0, job.name)


def read_sweep(sweep_dir: Path) -> tuple[list[Job], str]:
    """The jobs (every directory below `sweep_dir` that Hydra wrote a job record into, so also a
    directory of single runs such as outputs/emotion) and the validation metric they are ranked by
    (trainer.monitor of the sweep)."""
    job_dirs = sorted(p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml"))
    if not job_dirs:
        raise UserError(f"{sweep_dir}: no Hydra jobs (no */.hydra/overrides.yaml) below this directory")
    sweep_config = sweep_dir / "multirun.yaml"
    config = OmegaConf.load(sweep_config if sweep_config.is_file() else job_dirs[0] / ".hydra" / "config.yaml")
    monitor = OmegaConf.select(config, "trainer.monitor", default="accuracy")
    if monitor not in MONITORS:
        raise UserError(f"{sweep_dir}: trainer.monitor={monitor!r} is not one of {', '.join(MONITORS)}")
    return [read_job(str(d.relative_to(sweep_dir)), d) for d in job_dirs], monitor


def ranked(jobs: list[Job], monitor: str) -> list[Job]:
    """Completed jobs best first, then the others in job order (listed, never dropped)."""
    done = sorted((j for j in jobs if j.status == "ok"),
                  key=lambda j: (-MONITORS[monitor] * j.metrics["best_validation"][monitor], job_order(j)))
    return done + sorted((j for j in jobs if j.status != "ok"), key=job_order)


def swept_and_shared(values: list[dict]) -> tuple[list[str], list[str]]:
    """The override keys whose value differs between jobs, and those every job has with one value."""
    keys = list(dict.fromkeys(k for v in values for k in v))
    shared = [k for k in keys if all(k in v and v[k] == values[0][k] for v in values)]
    return [k for k in keys if k not in shared], shared


def table(jobs: list[Job]) -> tuple[list[str], list[list], list[str]]:
    """Header, rows, and the overrides every job shares (kept out of the per-job columns)."""
    values = [j.override_values() for j in jobs]
    swept, shared = swept_and_shared(values)
    header = ["job", *swept, *METRIC_COLUMNS, "wall s", "status"]
    rows = []
    for job, overrides in zip(jobs, values):
        metrics = [lookup(job.metrics, path) for path in METRIC_COLUMNS.values()]
        rows.append([job.name, *(overrides.get(k, "") for k in swept), *metrics, job.wall_seconds, job.status])
    return header, rows, [f"{k}={values[0][k]}" for k in shared]


def lookup(metrics: dict, path: tuple):
    for key in path:
        metrics = metrics.get(key) if isinstance(metrics, dict) else None
    return metrics


def cell(column: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if column.endswith(" s") else f"{value:.4f}"
    if isinstance(value, str) and len(value) > 8:  # Optuna's lr=1.9182157424526116e-05 -> 1.918e-05
        try:
            return f"{float(value):.4g}"
        except ValueError:
            pass
    return str(value).replace("|", "\\|")


def markdown(sweep_dir: Path, monitor: str, header: list[str], rows: list[list], shared: list[str]) -> str:
    completed = sum(row[-1] == "ok" for row in rows)
    better = "higher" if MONITORS[monitor] > 0 else "lower"
    lines = [f"# Sweep {sweep_dir}", "",
             f"{len(rows)} jobs, {completed} completed; ranked by validation {monitor} ({better} is better).", ""]
    if shared:
        lines += ["Every job: `" + " ".join(shared) + "`", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c, v) for c, v in zip(header, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_summary(sweep_dir: Path) -> str:
    """Writes summary.md and summary.csv into `sweep_dir` (and summary_groups.csv when seeds or folds
    are swept); returns the Markdown."""
    jobs, monitor = read_sweep(sweep_dir)
    jobs = ranked(jobs, monitor)
    header, rows, shared = table(jobs)
    text = markdown(sweep_dir, monitor, header, rows, shared)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*header, "overrides"])  # the full override list too, shared ones included
    for job, row in zip(jobs, rows):
        writer.writerow([*("" if v is None else v for v in row), " ".join(job.overrides)])
    repeats = swept_repeats(jobs)
    if repeats:
        groups, keys = configuration_groups(jobs, monitor), group_keys(jobs)
        text += "\n" + groups_markdown(groups, keys, monitor, repeats)
        replace_file(sweep_dir / GROUPS_CSV, groups_csv(groups, keys, repeats))
    replace_file(sweep_dir / "summary.md", text)
    replace_file(sweep_dir / "summary.csv", out.getvalue())
    return text


@dataclass
class Interval:
    """Mean over a group's runs, their standard deviation (n - 1 in the denominator) and the 95% confidence
    interval of the mean, mean ± t_{0.975, n-1} · std / sqrt(n); std and interval are None for n = 1."""
    mean: float
    std: float | None = None
    low: float | None = None
    high: float | None = None


def mean_interval(values: list[float]) -> Interval:
    n, mean = len(values), sum(values) / len(values)
    if n == 1:
        return Interval(mean)
    from scipy.stats import t  # here: scipy.stats takes a while to import, and only groups need it

    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return Interval(mean, std, mean - half, mean + half)


def repeat_unit(repeats: list[str]) -> str:
    """What one run of a group is called: 'seed', 'fold', or 'run' when both are swept."""
    return REPEAT_KEYS[repeats[0]] if len(repeats) == 1 else "run"


@dataclass
class ConfigurationGroup:
    overrides: list[str]  # the jobs' overrides, the swept repeat keys left out
    jobs: list[Job]  # its completed jobs, by fold, then seed
    repeats: list[str] = field(default_factory=lambda: [SEED_KEY])  # the swept repeat keys (REPEAT_KEYS)

    def seeds(self) -> list[str]:
        return self.repeat_values(SEED_KEY)

    def repeat_values(self, key: str) -> list[str]:
        return [str(j.value(key)) for j in self.jobs]

    def unit(self) -> str:
        return repeat_unit(self.repeats)

    def values(self, path: tuple) -> list[float]:
        return [lookup(j.metrics, path) for j in self.jobs]

    def interval(self, path: tuple) -> Interval:
        return mean_interval(self.values(path))


def swept_repeats(jobs: list[Job]) -> list[str]:
    """The repeat keys (fold first, then seed) given at least two values in the sweep."""
    return [key for key in sorted(REPEAT_KEYS, key=lambda k: k != "data.fold")
            if len({j.value(key) for j in jobs}) > 1]


def repeat_order(job: Job, repeats: list[str]):
    def number_first(value):
        return (0, int(value), "") if value is not None and value.lstrip("-").isdigit() else (1, 0, str(value))
    return tuple(number_first(job.value(key)) for key in repeats)


def configuration_groups(jobs: list[Job], monitor: str) -> list[ConfigurationGroup]:
    """The completed jobs grouped by their overrides other than the swept repeat keys (seed, fold),
    best mean validation `monitor` first (ties: in job order). Failed and incomplete jobs are in no
    group (the per-job table lists them)."""
    repeats = swept_repeats(jobs) or [SEED_KEY]
    groups: dict[tuple, list[Job]] = {}
    for job in sorted((j for j in jobs if j.status == "ok"), key=job_order):
        key = tuple(sorted(o for o in job.overrides if override_key(o) not in repeats))
        groups.setdefault(key, []).append(job)
    made = [ConfigurationGroup(list(key), sorted(members, key=lambda j: repeat_order(j, repeats)), repeats)
            for key, members in groups.items()]
    return sorted(made, key=lambda g: -MONITORS[monitor] * g.interval(("best_validation", monitor)).mean)


def group_keys(jobs: list[Job]) -> list[str]:
    """The swept keys that tell the groups apart: all swept keys but the repeat keys."""
    swept, _ = swept_and_shared([j.override_values() for j in jobs])
    return [k for k in swept if override_key(k) not in REPEAT_KEYS]


def group_setting(group: ConfigurationGroup, keys: list[str]) -> list[str]:
    values = group.jobs[0].override_values()
    return [values.get(k, "") for k in keys]


def interval_cell(interval: Interval, unit: str) -> str:
    if interval.std is None:
        return f"{interval.mean:.4f} (one {unit})"
    return f"{interval.mean:.4f} ± {interval.std:.4f} [{interval.low:.4f}, {interval.high:.4f}]"


def repeat_columns(repeats: list[str]) -> list[str]:
    return [f"{REPEAT_KEYS[key]}s" for key in repeats]


def groups_markdown(groups: list[ConfigurationGroup], keys: list[str], monitor: str, repeats: list[str]) -> str:
    unit, columns = repeat_unit(repeats), repeat_columns(repeats)
    lines = [f"## Configurations over {' and '.join(columns)}", "",
             f"{len(groups)} configurations of the completed jobs, best mean validation {monitor} first. "
             f"Per metric: mean ± std over the {unit}s [95% confidence interval of the mean, Student's t].", ""]
    header = ["#", *keys, "n", *columns, *GROUP_METRICS]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, group in enumerate(groups, start=1):
        intervals = [interval_cell(group.interval(path), unit) for path, _ in GROUP_METRICS.values()]
        settings = [cell(k, v) for k, v in zip(keys, group_setting(group, keys))]
        values = [", ".join(group.repeat_values(key)) for key in repeats]
        lines.append("| " + " | ".join([str(rank), *settings, str(len(group.jobs)), *values, *intervals]) + " |")
    lines += ["", f"Per {unit}, in the order of the {' and '.join(columns)} column{'s' * (len(columns) > 1)}:", "",
              "| # | " + " | ".join(GROUP_METRICS) + " |", "|" + "---|" * (len(GROUP_METRICS) + 1)]
    for rank, group in enumerate(groups, start=1):
        per_run = [", ".join(f"{v:.4f}" for v in group.values(path)) for path, _ in GROUP_METRICS.values()]
        lines.append("| " + " | ".join([str(rank), *per_run]) + " |")
    return "\n".join(lines) + "\n"


def groups_csv(groups: list[ConfigurationGroup], keys: list[str], repeats: list[str]) -> str:
    """One row per group: its settings, n runs, the seeds and/or folds, per metric mean/std/ci low/ci
    high (empty for one run) and the per-run values (space-separated, in the order of the seeds/folds),
    then its jobs. Columns name the repeat: 'n seeds' and 'per seed', 'n folds' and 'per fold', or
    'n runs' and 'per run' when both are swept."""
    out = io.StringIO()
    writer = csv.writer(out)
    unit, columns = repeat_unit(repeats), repeat_columns(repeats)
    stats = [f"{column} {stat}" for column in GROUP_METRICS
             for stat in ("mean", "std", "ci low", "ci high", f"per {unit}")]
    writer.writerow(["#", *keys, f"n {unit}s", *columns, *stats, "jobs", "overrides"])
    for rank, group in enumerate(groups, start=1):
        numbers = []
        for path, _ in GROUP_METRICS.values():
            i = group.interval(path)
            numbers += ["" if v is None else v for v in (i.mean, i.std, i.low, i.high)]
            numbers.append(" ".join(repr(v) for v in group.values(path)))
        values = [" ".join(group.repeat_values(key)) for key in repeats]
        writer.writerow([rank, *group_setting(group, keys), len(group.jobs), *values, *numbers,
                         " ".join(j.name for j in group.jobs), " ".join(group.overrides)])
    return out.getvalue()


def group_name(group: ConfigurationGroup, keys: list[str]) -> str:
    """The group's TensorBoard run: its settings of the swept keys, as a directory name."""
    name = ",".join(f"{k}={v}" for k, v in zip(keys, group_setting(group, keys))) or f"all_{group.unit()}s"
    return re.sub(r"[^\w.=,+-]", "_", name)[:200]


def write_group_hparams(sweep_dir: Path) -> Path | None:
    """One TensorBoard HParams entry per configuration group, in tensorboard_groups/<group>/: the
    hyperparameters of its jobs (training/tracking.py run_hparams, seed left out) and, per metric, the
    mean, std, confidence interval and the number of runs, `group/n_<unit>s` (NaN where one run gives
    no std). The directory is rewritten whole, so a group's numbers are never those of an earlier call.
    None when neither seeds nor folds are swept."""
    jobs, monitor = read_sweep(sweep_dir)
    if not swept_repeats(jobs):
        return None
    from torch.utils.tensorboard import SummaryWriter  # here: the CLI's tables need no torch
    from torch.utils.tensorboard.summary import hparams

    import common.config  # noqa: F401  (the resolvers the jobs' configs may name)
    from training.tracking import HPARAMS, mark_as_differing, run_hparams

    groups, keys = configuration_groups(jobs, monitor), group_keys(jobs)
    differing = {name for name, (key, _) in HPARAMS.items() if key in {override_key(k) for k in keys}}
    out = sweep_dir / GROUPS_TENSORBOARD
    shutil.rmtree(out, ignore_errors=True)
    for group in groups:
        config_path = sweep_dir / group.jobs[0].name / ".hydra" / "config.yaml"
        try:
            values = {name: v for name, v in run_hparams(OmegaConf.load(config_path)).items() if name != SEED_KEY}
        except (OSError, TypeError, ValueError) as e:  # no config, or one from before a hyperparameter existed
            raise UserError(f"{config_path}: no HParams entry for its configuration ({e})") from None
        metrics = {f"group/n_{group.unit()}s": float(len(group.jobs))}
        for path, tag in GROUP_METRICS.values():
            i = group.interval(path)
            for stat, value in (("mean", i.mean), ("std", i.std), ("ci_low", i.low), ("ci_high", i.high)):
                metrics[f"group/{tag}_{stat}"] = math.nan if value is None else value
        with SummaryWriter(log_dir=str(out / group_name(group, keys))) as writer:
            for tag, value in metrics.items():
                writer.add_scalar(tag, value, 0)
            experiment, session_start, session_end = hparams(values, metrics)
            mark_as_differing(experiment, differing)
            for summary in (experiment, session_start, session_end):
                writer.file_writer.add_summary(summary)
    return out


def replace_file(path: Path, text: str):
    """Readers see the old table or the new one, never half of one; jobs ending together (parallel
    launchers) each write their own temporary file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def is_main_process() -> bool:
    """False on the other ranks of a data-parallel job, which share rank 0's run directory."""
    return os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) == "0"


class SweepSummary(Callback):
    """Per job: job.json with status (completed | failed), wall seconds and the error of a failed
    job; in a multirun, the sweep's table is then rewritten, so a running sweep, or one that a
    failing job ended (Hydra stops the sweep there, before on_multirun_end), has an up-to-date one.
    At the end of a multirun the table is printed.

    A job stopped by sys.exit (a config error, Ctrl-C) reaches no callback: it has no job.json and
    the table, made by the CLI, calls it incomplete."""

    def on_job_start(self, config, **kwargs):
        self.job_start = time.perf_counter()

    def on_job_end(self, config, job_return, **kwargs):
        if not is_main_process():
            return
        record = {"status": job_return.status.name.lower(),
                  "wall_seconds": round(time.perf_counter() - self.job_start, 1)}
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # the exception; `.return_value` would re-raise it
            record["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:200]
        (Path(config.hydra.runtime.output_dir) / "job.json").write_text(json.dumps(record, indent=2) + "\n")
        if config.hydra.mode == RunMode.MULTIRUN:
            write_summary(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config, **kwargs):
        sweep_dir = Path(config.hydra.sweep.dir)
        print(write_summary(sweep_dir) + f"\nwrote {sweep_dir / 'summary.md'} and {sweep_dir / 'summary.csv'}")
        groups = write_group_hparams(sweep_dir)
        if groups is not None:
            print(f"wrote {sweep_dir / GROUPS_CSV} and {groups} (tensorboard --logdir {groups})")


def sweep_dir_argument(argv: list[str], command: str) -> Path:
    """The one argument of `python -m research.sweep_summary|folds SWEEP_DIR`, an existing directory."""
    if len(argv) != 1 or argv[0].startswith("-"):
        raise UserError(f"usage: python -m {command} SWEEP_DIR")
    sweep_dir = Path(argv[0])
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir}: no such directory")
    return sweep_dir


@exit_on_user_error
def main(argv: list[str]):
    sweep_dir = sweep_dir_argument(argv, "research.sweep_summary")
    print(write_summary(sweep_dir), end="")
    write_group_hparams(sweep_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
