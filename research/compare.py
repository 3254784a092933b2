"""Is B better than A, or is the difference noise? Paired significance of accuracy and macro-F1 from
per-example predictions (evaluation/predictions.py) of two runs, or two seed groups, on the same examples.

    python -m research.compare A B [--split test] [--resamples 10000] [--seed 0] [--out FILE.json]
    python -m research.compare --sweep SWEEP_DIR A B      # A, B: configuration groups of a sweep

A and B are each a run directory (its predictions_<split>.npz), a predictions file, or a seed group:
run directories separated by commas, or a glob quoted so that the shell leaves it to us
('multirun/emotion/X/[012]'). With --sweep, A and B are configuration groups of the sweep (jobs that
differ only in seed, research/sweep_summary.py): a row number of summary.md's grouped table, or
overrides that pick one group ('optim.lr=3e-05', several separated by spaces).

For each metric (of a group: the mean over its runs) it reports A, B, B - A in points, and
- a paired bootstrap: the examples resampled with replacement `--resamples` times (seeded), the same
  resample for every run of both sides; the 95% percentile interval of B - A, and a two-sided p-value:
  twice the share of resampled differences at or beyond 0 on the side opposite the observed one,
  counted as (1 + k) / (1 + resamples) so that it is never 0, capped at 1 (1 when B - A = 0). It is
  below 0.05 about when the interval leaves out 0; "significant" in the sentences means p < 0.05.
- accuracy: McNemar's exact test, on b examples only A gets right and c only B gets right (two-sided,
  binomial(b + c, 1/2)); for seed groups of equal size, per pair of runs, paired by sorted seed.
- seed groups of two or more runs each: Welch's t-test on the per-run values, whether B - A is large
  beside what changing the seed does (the bootstrap only sees the examples' noise).
"""
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from common.cli import OneLineArgumentParser
from common.errors import UserError, exit_on_user_error
from common.overrides import override_meaning
from common.path_lists import listed_paths
from common.output_paths import check_output_file, write_text_atomic
from evaluation.predictions import Predictions, predictions_path, read_predictions

METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}  # key -> as printed
ALPHA = 0.05
CHUNK_VALUES = 4_000_000  # resamples drawn at a time: about this many example indices in memory
MINUS = "\u2212"


@dataclass
class Run:
    path: Path  # its predictions file
    seed: int | None  # from the run directory's .hydra/config.yaml, when there is one
    predictions: Predictions


def run_seed(run_dir: Path) -> int | None:
    config = run_dir / ".hydra" / "config.yaml"
    return OmegaConf.select(OmegaConf.load(config), "seed") if config.is_file() else None


def read_run(path: Path, split: str) -> Run:
    file = predictions_path(path, split) if path.is_dir() else path
    predictions = read_predictions(file)
    if predictions.multi_label:
        raise UserError(f"{file}: multi-label predictions; research.compare tests single-label runs only")
    return Run(file, run_seed(file.parent), predictions)


def read_side(spec: str, split: str) -> list[Run]:
    """In order of seed, then of path: the order McNemar pairs two groups' runs in."""
    return sorted((read_run(p, split) for p in listed_paths(spec)),
                  key=lambda r: (r.seed is None, r.seed or 0, str(r.path)))


def sweep_side(sweep_dir: Path, spec: str, split: str) -> list[Run]:
    """The runs of one configuration group of the sweep: the `spec`-th row of its grouped table, or
    the one group whose overrides include every override in `spec`."""
    from research.sweep_summary import configuration_groups, read_sweep

    jobs, monitor = read_sweep(sweep_dir)
    groups = configuration_groups(jobs, monitor)
    if spec.isdigit():
        if not 1 <= int(spec) <= len(groups):
            raise UserError(f"{sweep_dir}: no configuration {spec} (it has {len(groups)}, see summary.md)")
        chosen = [groups[int(spec) - 1]]
    else:
        wanted = {override_meaning("config", o) for o in spec.split()}  # 5e-5 is 5e-05, 문장 is '문장'
        chosen = [g for g in groups if wanted <= {override_meaning("config", o) for o in g.overrides}]
        if len(chosen) != 1:
            raise UserError(f"{sweep_dir}: {spec!r} matches {len(chosen)} configurations, not one "
                            f"(give more overrides, or the row number from summary.md)")
    return [read_run(sweep_dir / job.name, split) for job in chosen[0].jobs]


def check_same_examples(runs: list[Run]) -> list[str]:
    """Every run must have predicted the same examples, in the same order, with the same label names: the
    digests of their texts must agree. Files written before the digest was kept are compared on count, order
    and gold labels only; the notes returned say which."""
    first = runs[0]
    a = first.predictions
    notes = [f"note: {run.path} records no digest of its texts (written before research.compare checked them): "
             "the examples are matched by count, order and gold labels only"
             for run in runs if run.predictions.texts_sha256 is None]
    for run in runs[1:]:
        b = run.predictions
        where = f"{first.path} and {run.path}"
        if a.texts_sha256 and b.texts_sha256 and a.texts_sha256 != b.texts_sha256:
            raise UserError(f"{where} were predicted on different texts (texts sha256 {a.texts_sha256[:12]} vs "
                            f"{b.texts_sha256[:12]}): not the same examples")
        if a.labels != b.labels:
            raise UserError(f"{where} have different label names: {a.labels} vs {b.labels}")
        if len(a) != len(b):
            raise UserError(f"{where} have different numbers of examples: {len(a)} vs {len(b)} "
                            "(another split or another data set?)")
        if not np.array_equal(a.index, b.index):
            raise UserError(f"{where} list other examples, or the same in another order (index arrays differ)")
        differ = np.flatnonzero(a.gold != b.gold)
        if len(differ):
            raise UserError(f"{where} have different gold labels on {len(differ)} of {len(a)} examples "
                            f"(first: example {int(a.index[differ[0]])}): not the same data")
    return notes


def bootstrap_weights(n_examples: int, resamples: int, seed: int):
    """(chunk, N) matrices of how often each example is drawn, chunk after chunk, `resamples` rows in all."""
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_VALUES // n_examples)
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        drawn = rng.integers(0, n_examples, size=(rows, n_examples)) + n_examples * np.arange(rows)[:, None]
        yield np.bincount(drawn.ravel(), minlength=rows * n_examples).reshape(rows, n_examples).astype(np.float64)


def weighted_metrics(weights: np.ndarray, gold: np.ndarray, predicted: np.ndarray, classes: int) -> dict:
    """Accuracy and macro-F1 (every class counted, 0 where it is neither gold nor predicted, as
    evaluation/metrics.py) of each row of `weights`: example i counted weights[r, i] times."""
    gold_onehot, predicted_onehot = np.eye(classes)[gold], np.eye(classes)[predicted]
    correct = (gold == predicted).astype(np.float64)
    true_positives = weights @ (gold_onehot * predicted_onehot)
    # 2 TP + FP + FN = (TP + FN) + (TP + FP): the class's gold count plus its predicted count
    denominator = weights @ gold_onehot + weights @ predicted_onehot
    f1 = np.divide(2 * true_positives, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return {"accuracy": weights @ correct / weights.sum(1), "macro_f1": f1.mean(1)}


def side_metrics(runs: list[Run], weights: np.ndarray) -> dict:
    """metric -> (runs, rows of weights)."""
    classes = len(runs[0].predictions.labels)
    per_run = [weighted_metrics(weights, r.predictions.gold, r.predictions.predicted, classes) for r in runs]
    return {m: np.stack([values[m] for values in per_run]) for m in METRICS}


def bootstrap_differences(a: list[Run], b: list[Run], resamples: int, seed: int) -> dict:
    """metric -> (resamples,) mean of B's runs minus mean of A's runs, on each resample."""
    differences = {m: [] for m in METRICS}
    for weights in bootstrap_weights(len(a[0].predictions), resamples, seed):
        a_values, b_values = side_metrics(a, weights), side_metrics(b, weights)
        for m in METRICS:
            differences[m].append(b_values[m].mean(0) - a_values[m].mean(0))
    return {m: np.concatenate(d) for m, d in differences.items()}


def bootstrap_p_value(observed: float, resampled: np.ndarray) -> float:
    if observed == 0:
        return 1.0
    beyond = np.sum(resampled <= 0) if observed > 0 else np.sum(resampled >= 0)
    return float(min(1.0, 2 * (1 + beyond) / (1 + len(resampled))))


def mcnemar(a: Predictions, b: Predictions) -> dict:
    from scipy.stats import binomtest

    a_right, b_right = a.predicted == a.gold, b.predicted == b.gold
    only_a, only_b = int(np.sum(a_right & ~b_right)), int(np.sum(~a_right & b_right))
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a_right": only_a, "only_b_right": only_b, "p": float(min(1.0, p))}


def welch_p_value(a_values: list[float], b_values: list[float]) -> float | None:
    """None when either side has fewer than two runs, or neither varies (no test to make)."""
    from scipy.stats import ttest_ind

    if min(len(a_values), len(b_values)) < 2:
        return None
    p = float(ttest_ind(b_values, a_values, equal_var=False).pvalue)
    return None if np.isnan(p) else p


def compare(a: list[Run], b: list[Run], resamples: int, seed: int) -> dict:
    """Everything the report prints, as plain numbers (the --out JSON)."""
    notes = check_same_examples(a + b)
    n = len(a[0].predictions)
    if n == 0:
        raise UserError(f"{a[0].path}: no examples to compare on")
    observed_a, observed_b = side_metrics(a, np.ones((1, n))), side_metrics(b, np.ones((1, n)))
    resampled = bootstrap_differences(a, b, resamples, seed)
    result = {"examples": n, "resamples": resamples, "seed": seed, "metrics": {},
              "a": [{"path": str(r.path), "seed": r.seed} for r in a],
              "b": [{"path": str(r.path), "seed": r.seed} for r in b], "notes": notes}
    for m in METRICS:
        a_values, b_values = observed_a[m][:, 0].tolist(), observed_b[m][:, 0].tolist()
        difference = float(np.mean(b_values) - np.mean(a_values))
        low, high = np.percentile(resampled[m], [2.5, 97.5])
        p = bootstrap_p_value(difference, resampled[m])
        result["metrics"][m] = {
            "a": float(np.mean(a_values)), "b": float(np.mean(b_values)),
            "a_std": float(np.std(a_values, ddof=1)) if len(a) > 1 else None,
            "b_std": float(np.std(b_values, ddof=1)) if len(b) > 1 else None,
            "a_runs": a_values, "b_runs": b_values,
            "difference_points": 100 * difference, "ci_points": [100 * float(low), 100 * float(high)],
            "p_bootstrap": p, "significant": p < ALPHA, "p_welch": welch_p_value(a_values, b_values),
            "sentence": sentence(100 * difference, 100 * low, 100 * high, p)}
    # McNemar pairs single runs; seed groups only when both have as many runs (paired by sorted seed).
    result["mcnemar"] = [{"a": str(ra.path), "b": str(rb.path), **mcnemar(ra.predictions, rb.predictions)}
                         for ra, rb in zip(a, b)] if len(a) == len(b) else []
    return result


def signed(value: float, digits: int, plus: bool = True) -> str:
    """With a real minus sign; no sign at all where the value rounds to zero."""
    text = f"{abs(value):.{digits}f}"
    if not text.strip("0."):
        return text
    return (MINUS if value < 0 else "+" if plus else "") + text


def p_number(p: float) -> str:
    """Two significant digits, more where rounding would put p on the other side of 0.05."""
    if p < 0.001:
        return "<0.001"
    text = f"{p:.2g}"
    return f"{p:.3g}" if (float(text) < ALPHA) != (p < ALPHA) else text


def sentence(difference: float, low: float, high: float, p: float) -> str:
    """'+0.6 points, 95% CI [−0.2, 1.4], p = 0.13: not significant', to paste into a paper."""
    verdict = "significant" if p < ALPHA else "not significant"
    p_clause = "p < 0.001" if p < 0.001 else f"p = {p_number(p)}"
    return (f"{signed(difference, 1)} points, 95% CI [{signed(low, 1, plus=False)}, {signed(high, 1, plus=False)}], "
            f"{p_clause}: {verdict}")


def aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def run_label(side: str, run: dict, i: int) -> str:
    return f"{side} seed {run['seed']}" if run["seed"] is not None else f"{side} run {i + 1}"


def side_line(side: str, spec: str, runs: list[dict]) -> str:
    if len(runs) == 1:
        return f"{side}  {runs[0]['path']}"
    seeds = [str(r["seed"]) for r in runs if r["seed"] is not None]
    return f"{side}  {spec}: {len(runs)} runs" + (f", seeds {', '.join(seeds)}" if len(seeds) == len(runs) else "")


def metrics_table(result: dict, groups: bool) -> list[str]:
    metrics = result["metrics"]
    welch = groups and any(m["p_welch"] is not None for m in metrics.values())
    rows = [["metric", "A", "B", "B−A (points)", "95% CI", "p (bootstrap)"] + (["p (Welch, runs)"] if welch else [])]
    for key, name in METRICS.items():
        m = metrics[key]
        a, b = (f"{m[s]:.4f}" + ("" if m[f"{s}_std"] is None else f" ± {m[f'{s}_std']:.4f}") for s in ("a", "b"))
        low, high = (signed(v, 2, plus=False) for v in m["ci_points"])
        row = [name, a, b, signed(m["difference_points"], 2), f"[{low}, {high}]", p_number(m["p_bootstrap"])]
        if welch:
            row.append("—" if m["p_welch"] is None else p_number(m["p_welch"]))
        rows.append(row)
    return aligned(rows)


def runs_table(result: dict) -> list[str]:
    rows = [["run", *METRICS.values(), "predictions"]]
    for side in ("a", "b"):
        for i, run in enumerate(result[side]):
            values = [f"{result['metrics'][k][f'{side}_runs'][i]:.4f}" for k in METRICS]
            rows.append([run_label(side.upper(), run, i), *values, run["path"]])
    return aligned(rows)


def mcnemar_lines(result: dict, groups: bool) -> list[str]:
    a, b = result["a"], result["b"]
    if not result["mcnemar"]:
        return [f"McNemar's test: skipped, {len(a)} runs against {len(b)} leave no pairs to match."]
    lines = ["McNemar's exact test (accuracy), b: only A right, c: only B right"
             + (", runs paired in order of seed (else of path):" if groups else ":")]
    for i, pair in enumerate(result["mcnemar"]):
        pairing = f"{run_label('A', a[i], i)} vs {run_label('B', b[i], i)}: " if groups else ""
        lines.append(f"  {pairing}b = {pair['only_a_right']}, c = {pair['only_b_right']}, p = {p_number(pair['p'])}")
    return lines


def report(result: dict, a_spec: str, b_spec: str, split: str) -> str:
    groups = len(result["a"]) > 1 or len(result["b"]) > 1
    lines = [side_line("A", a_spec, result["a"]), side_line("B", b_spec, result["b"]),
             f"{split} split, {result['examples']} examples; paired bootstrap over the examples, "
             f"{result['resamples']} resamples, seed {result['seed']}"
             + ("; groups: means over runs" if groups else ""),
             "", *metrics_table(result, groups), ""]
    if groups:
        lines += [*runs_table(result), ""]
    lines += [*mcnemar_lines(result, groups), ""]
    lines += [f"{name}: {result['metrics'][key]['sentence']}" for key, name in METRICS.items()]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]):
    parser = OneLineArgumentParser(prog="python -m research.compare", description=__doc__.split("\n")[0],
                                   usage_line="python -m research.compare A B [--split test] [--resamples N] "
                                              "[--seed S] [--sweep SWEEP_DIR] [--out FILE.json]")
    parser.add_argument("a", help="run directory, predictions .npz, comma-separated runs or a quoted glob")
    parser.add_argument("b", help="the same for the other side")
    parser.add_argument("--split", default="test", help="predictions_<split>.npz of run directories (default test)")
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0, help="of the bootstrap's random resamples")
    parser.add_argument("--sweep", type=Path, help="A and B are configuration groups of this sweep directory")
    parser.add_argument("--out", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.resamples < 1:
        raise UserError(f"--resamples {args.resamples}: give at least 1 (10000 is usual)")
    return args


@exit_on_user_error
def main(argv: list[str]):
    args = parse_args(argv)
    if args.out is not None:  # before the bootstrap, not after it
        check_output_file(args.out, "--out")
    if args.sweep is not None:
        a, b = (sweep_side(args.sweep, spec, args.split) for spec in (args.a, args.b))
    else:
        a, b = (read_side(spec, args.split) for spec in (args.a, args.b))
    result = compare(a, b, args.resamples, args.seed)
    for note in result["notes"]:
        print(note, file=sys.stderr)
    print(report(result, args.a, args.b, args.split), end="")
    if args.out is not None:
        write_text_atomic(args.out, json.dumps({"split": args.split, "a_spec": args.a, "b_spec": args.b, **result},
                                       indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
