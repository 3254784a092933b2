"""Out-of-fold predictions of a cross-validation sweep (`python train.py -m data.folds=K data.fold=0,..,K-1`):
the fold runs' validation predictions joined into one predictions file over the whole training pool,
each example predicted by the one model that did not train on it.

    python -m research.folds SWEEP_DIR        # also run by the Hydra callback when a fold sweep ends

Per configuration of the sweep (research/sweep_summary.py's groups; per seed when seeds are swept too),
SWEEP_DIR/out_of_fold/<configuration>/ gets
  predictions_out_of_fold.npz  evaluation/predictions.py's format; row i = example i of the pool
                               (data/folds.py: training split then validation split of the usual reading).
                               Single-label logits are divided by each fold's temperature (temperature 1.0),
                               so the probabilities stay exactly the folds'. Multi-label thresholds are the
                               folds' when all agree, else empty (each `predicted` row used its own fold's).
  examples.jsonl               per pool example: index, fold, label, text (and text_b)
Every pool example must come from exactly one fold run, the fold runs must share one data config
(fold aside) and their gold labels must be the pool's: anything else is refused in one line.
"""
import json
import sys
from pathlib import Path

import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from common.errors import UserError, exit_on_user_error
from data.build import label_ids, read_splits
from data.folds import pool_folds, training_pool
from evaluation.predictions import Predictions, predictions_path, read_predictions, write_predictions
from research.sweep_summary import (SEED_KEY, ConfigurationGroup, Job, configuration_groups, group_keys,
                                    group_name, read_sweep, swept_repeats, sweep_dir_argument)

FOLD_KEY = "data.fold"
OUT_DIR, PREDICTIONS_FILE, EXAMPLES_FILE = "out_of_fold", "predictions_out_of_fold.npz", "examples.jsonl"


def job_data_config(sweep_dir: Path, job: Job):
    import common.config  # noqa: F401  (the resolvers a job's config may name)

    path = sweep_dir / job.name / ".hydra" / "config.yaml"
    try:
        return OmegaConf.load(path).data
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read the job's config ({e})") from None


def unfolded(data_cfg) -> dict:
    """The data config as plain values, fold left out: what every fold run of one configuration shares."""
    values = OmegaConf.to_container(data_cfg, resolve=True)
    values.pop("fold", None)
    return values


def check_fold_runs(sweep_dir: Path, jobs: list[Job]) -> tuple[dict, int]:
    """The shared data config and K, once every fold 0..K-1 has exactly one completed run."""
    configs = [job_data_config(sweep_dir, job) for job in jobs]
    shared = unfolded(configs[0])
    folds = shared.get("folds")
    if not folds:
        raise UserError(f"{sweep_dir / jobs[0].name}: data.folds is not set in this job (no cross-validation)")
    for job, config in zip(jobs, configs):
        if unfolded(config) != shared:
            raise UserError(f"{sweep_dir / job.name} and {sweep_dir / jobs[0].name}: the data configs differ beyond "
                            "data.fold (not folds of one pool)")
    done = sorted(int(config.fold) for config in configs)
    if done != list(range(folds)):
        missing = sorted(set(range(folds)) - set(done))
        repeated = sorted({f for f in done if done.count(f) > 1})
        raise UserError(f"{sweep_dir}: out-of-fold predictions need one completed run of each fold 0..{folds - 1}; "
                        + (f"fold {missing[0]} has none" if missing else f"fold {repeated[0]} has several"))
    return shared, folds


def join_out_of_fold(sweep_dir: Path, jobs: list[Job]) -> tuple[Predictions, list[dict]]:
    """The joined predictions and the pool's examples (index, fold, label, text)."""
    shared, folds = check_fold_runs(sweep_dir, jobs)
    # the pool as the fold runs dealt it: data.exclude drops training rows only after the folds are made
    splits = read_splits(OmegaConf.create({**shared, "folds": None, "fold": None}), exclude=False)
    pool = training_pool(splits["train"], splits["validation"])
    fold_of = pool_folds(pool, folds, shared["split_seed"])
    parts = {}
    for job in jobs:
        fold = int(job_data_config(sweep_dir, job).fold)
        path = predictions_path(sweep_dir / job.name, "validation")
        predictions = read_predictions(path)
        members = np.flatnonzero(fold_of == fold)
        gold = label_ids(pool.subset(members), predictions.labels, predictions.multi_label)
        if len(predictions) != len(members) or not np.array_equal(np.asarray(predictions.gold, gold.dtype), gold):
            raise UserError(f"{path}: its {len(predictions)} examples are not fold {fold}'s {len(members)} of the "
                            "pool (other data, or a data file changed since the run)")
        parts[fold] = (members, predictions)
    joined = assemble(len(pool), list(parts.values()))
    examples = [{"index": i, "fold": int(fold_of[i]),
                 "label": list(pool.labels[i]) if pool.multi_label else pool.labels[i], "text": pool.texts[i],
                 **({} if pool.texts_b is None else {"text_b": pool.texts_b[i]})} for i in range(len(pool))]
    return joined, examples


def assemble(n: int, parts: list[tuple[np.ndarray, Predictions]]) -> Predictions:
    """Rows of each fold's predictions placed at its pool positions; every position filled exactly once."""
    first = parts[0][1]
    for _, predictions in parts[1:]:
        if predictions.labels != first.labels or predictions.multi_label != first.multi_label:
            raise UserError(f"the fold runs disagree on the labels: {first.labels} vs {predictions.labels}")
    times = np.bincount(np.concatenate([members for members, _ in parts]), minlength=n)
    if not np.all(times == 1):
        where = int(np.flatnonzero(times != 1)[0])
        raise UserError(f"pool example {where} is predicted {times[where]} times, not once")
    gold = np.zeros((n, *first.gold.shape[1:]), first.gold.dtype)
    predicted = np.zeros((n, *first.predicted.shape[1:]), first.predicted.dtype)
    probabilities = np.zeros((n, len(first.labels)), np.float32)
    logits = np.zeros_like(probabilities)
    for members, p in parts:
        gold[members], predicted[members], probabilities[members] = p.gold, p.predicted, p.probabilities
        logits[members] = p.logits if first.multi_label else p.logits / p.temperature
    thresholds = None
    if first.multi_label:
        agree = all(np.array_equal(p.thresholds, first.thresholds) for _, p in parts)
        thresholds = first.thresholds if agree else np.zeros(0, np.float32)
    return Predictions(np.arange(n), gold, predicted, probabilities, logits, first.labels, first.multi_label, 1.0,
                       thresholds)


def fold_sets(sweep_dir: Path) -> list[tuple[str, list[Job]]]:
    """(name, jobs) per configuration of the sweep, and per seed when seeds are swept as well."""
    jobs, monitor = read_sweep(sweep_dir)
    repeats = swept_repeats(jobs)
    if FOLD_KEY not in repeats:
        raise UserError(f"{sweep_dir}: {FOLD_KEY} is not swept (run train.py -m data.folds=K data.fold=0,1,...)")
    keys = group_keys(jobs)
    sets = []
    for group in configuration_groups(jobs, monitor):
        seeds = list(dict.fromkeys(group.repeat_values(SEED_KEY))) if SEED_KEY in repeats else [None]
        for seed in seeds:
            members = [j for j in group.jobs if seed is None or str(j.value(SEED_KEY)) == seed]
            name = group_name(ConfigurationGroup(group.overrides, members, [FOLD_KEY]), keys)
            sets.append((name if seed is None else f"{name},seed={seed}", members))
    return sets


def write_out_of_fold(sweep_dir: Path) -> list[str]:
    """Writes each configuration's out-of-fold directory; returns one line per configuration saying
    what was written, or why not (a configuration with a fold still missing is skipped, not fatal)."""
    lines = []
    for name, jobs in fold_sets(sweep_dir):
        out = sweep_dir / OUT_DIR / name
        try:
            predictions, examples = join_out_of_fold(sweep_dir, jobs)
        except UserError as e:
            lines.append(f"{name}: no out-of-fold predictions: {e}")
            continue
        out.mkdir(parents=True, exist_ok=True)
        write_predictions(out / PREDICTIONS_FILE, predictions)
        (out / EXAMPLES_FILE).write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples),
                                         encoding="utf-8")
        score = "" if predictions.multi_label else \
            f", accuracy {float(np.mean(predictions.predicted == predictions.gold)):.4f}"
        lines.append(f"{name}: {len(predictions)} pool examples, each predicted once{score}: {out / PREDICTIONS_FILE}")
    return lines


class OutOfFoldPredictions(Callback):
    """conf/config.yaml hydra.callbacks: a multirun over data.fold ends with its out-of-fold files."""

    def on_multirun_end(self, config, **kwargs):
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs, _ = read_sweep(sweep_dir)
        if FOLD_KEY in swept_repeats(jobs):
            print("\n".join(write_out_of_fold(sweep_dir)))


@exit_on_user_error
def main(argv: list[str]):
    sweep_dir = sweep_dir_argument(argv, "research.folds")
    lines = write_out_of_fold(sweep_dir)
    print("\n".join(lines))
    if not any(line.endswith(PREDICTIONS_FILE) for line in lines):
        raise UserError(f"{sweep_dir}: no configuration has a completed run of every fold")


if __name__ == "__main__":
    main(sys.argv[1:])
