"""An ensemble of runs (seeds, or the fold models of a cross-validation sweep) from their per-example
predictions: the mean of their probabilities, written as one predictions file that research.compare
compares with any single run.

    python -m research.ensemble 'multirun/korean_emotion/X/[0-4]' --out ensemble_test.npz [--split test]
    python -m research.compare outputs/korean_emotion/<run> ensemble_test.npz

The runs are given as research.compare's sides are: run directories (their predictions_<split>.npz),
predictions files, comma-separated, or a quoted glob. They must have predicted the same examples with
the same labels. The ensemble's probabilities are the runs' mean probabilities (each run's own
temperature applied), its label their argmax, its logits their logarithm (so that the softmax of the
logits gives back the probabilities) with temperature 1. Single-label only: a multi-label ensemble
would need thresholds of its own, tuned on its validation predictions, which no run has.
"""
import sys
from pathlib import Path

import numpy as np

from common.cli import OneLineArgumentParser
from common.errors import UserError, exit_on_user_error
from common.path_lists import listed_paths
from evaluation.predictions import Predictions, predictions_path, read_predictions, write_predictions
from inference.ensemble import as_logits, mean_probabilities
from research.compare import METRICS, Run, check_same_examples, side_metrics


def read_members(spec: str, split: str) -> list[Run]:
    runs = []
    for path in listed_paths(spec):
        file = predictions_path(path, split) if path.is_dir() else path
        predictions = read_predictions(file)
        if predictions.multi_label:
            raise UserError(f"{file}: multi-label predictions; an ensemble of them would need thresholds tuned "
                            "for it, which research.ensemble does not do")
        runs.append(Run(file, None, predictions))
    if len(runs) < 2:
        raise UserError(f"{spec!r}: names {len(runs)} run; an ensemble needs at least two")
    check_same_examples(runs)
    return runs


def average(runs: list[Run]) -> Predictions:
    first = runs[0].predictions
    probabilities = mean_probabilities([r.predictions.probabilities for r in runs])
    return Predictions(first.index, first.gold, probabilities.argmax(1), probabilities, as_logits(probabilities),
                       first.labels)


def report(runs: list[Run], ensemble: Predictions, split: str, out: Path) -> str:
    n = len(ensemble)
    members = side_metrics(runs, np.ones((1, n)))
    whole = side_metrics([Run(out, None, ensemble)], np.ones((1, n)))
    rows = [("run", *METRICS.values())]
    rows += [(str(r.path), *(f"{members[m][i, 0]:.4f}" for m in METRICS)) for i, r in enumerate(runs)]
    rows.append((f"mean of the {len(runs)} runs", *(f"{members[m][:, 0].mean():.4f}" for m in METRICS)))
    rows.append(("ensemble (mean probabilities)", *(f"{whole[m][0, 0]:.4f}" for m in METRICS)))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = [f"{len(runs)} runs, {split} split, {n} examples"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines) + f"\nwrote {out} (python -m research.compare RUN {out})\n"


@exit_on_user_error
def main(argv: list[str]):
    parser = OneLineArgumentParser(prog="python -m research.ensemble", description=__doc__.split("\n")[0],
                                   usage_line="python -m research.ensemble RUNS --out FILE.npz [--split test]")
    parser.add_argument("runs", help="run directories or predictions files: comma-separated or a quoted glob")
    parser.add_argument("--out", type=Path, required=True, help="the ensemble's predictions file (.npz)")
    parser.add_argument("--split", default="test", help="predictions_<split>.npz of run directories (default test)")
    args = parser.parse_args(argv)
    if args.out.suffix != ".npz":
        raise UserError(f"--out {args.out}: give a .npz file name")
    runs = read_members(args.runs, args.split)
    ensemble = average(runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_predictions(args.out, ensemble)
    print(report(runs, ensemble, args.split, args.out), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
