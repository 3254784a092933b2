"""One table of every job of a Hydra multirun: its overrides, best-validation and test metrics, time
and outcome, best job first by the monitored metric. Written as summary.md and summary.csv in the
sweep directory.

    python -m engine.sweep_summary multirun/emotion/2026-01-01_12-00-00   # any sweep directory

Also a Hydra callback (conf/config.yaml, hydra.callbacks): it records each job's wall time and
outcome in the job's directory (job.json), rewrites the table after each job of a multirun, and
prints it when the multirun ends.
"""
import csv
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import OmegaConf

from common.errors import UserError, exit_on_user_error
from engine.tracking import MONITORS

METRIC_COLUMNS = {"best epoch": ("best_validation", "epoch"), "val loss": ("best_validation", "loss"),
                  "val accuracy": ("best_validation", "accuracy"), "val macro-F1": ("best_validation", "macro_f1"),
                  "test accuracy": ("test", "accuracy"), "test macro-F1": ("test", "macro_f1"),
                  "train s": ("train_seconds",)}


@dataclass
class Job:
    name: str  # directory below the sweep's: the job number (hydra.sweep.subdir), or a run's path
    overrides: list[str]
    status: str  # ok | failed: <error> | incomplete (still running, killed, or stopped by a config error)
    metrics: dict = field(default_factory=dict)  # the job's metrics.json, empty unless ok
    wall_seconds: float | None = None  # from job.json, written by the callback

    def override_values(self) -> dict:
        return dict(o.partition("=")[::2] for o in self.overrides)


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


def table(jobs: list[Job]) -> tuple[list[str], list[list], list[str]]:
    """Header, rows, and the overrides every job shares (kept out of the per-job columns)."""
    values = [j.override_values() for j in jobs]
    keys = list(dict.fromkeys(k for v in values for k in v))
    shared = [k for k in keys if all(k in v and v[k] == values[0][k] for v in values)]
    swept = [k for k in keys if k not in shared]
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
    """Writes summary.md and summary.csv into `sweep_dir`; returns the Markdown."""
    jobs, monitor = read_sweep(sweep_dir)
    jobs = ranked(jobs, monitor)
    header, rows, shared = table(jobs)
    text = markdown(sweep_dir, monitor, header, rows, shared)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*header, "overrides"])  # the full override list too, shared ones included
    for job, row in zip(jobs, rows):
        writer.writerow([*("" if v is None else v for v in row), " ".join(job.overrides)])
    replace_file(sweep_dir / "summary.md", text)
    replace_file(sweep_dir / "summary.csv", out.getvalue())
    return text


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


@exit_on_user_error
def main(argv: list[str]):
    if len(argv) != 1 or argv[0].startswith("-"):
        raise UserError("usage: python -m engine.sweep_summary SWEEP_DIR")
    sweep_dir = Path(argv[0])
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir}: no such directory")
    print(write_summary(sweep_dir), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
