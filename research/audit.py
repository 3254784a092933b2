"""Label audit: the examples whose given label is likely wrong, by confident learning
(research/confident_learning.py) on out-of-sample probabilities.

    python -m research.audit SWEEP_DIR/out_of_fold/all_folds        # a fold sweep's out-of-fold predictions
    python -m research.audit PREDICTIONS.npz [--out DIR] [--show 10]  # any predictions file

SOURCE is an out-of-fold directory (research/folds.py: its texts come from examples.jsonl) or a
predictions file (evaluation/predictions.py; texts when an examples.jsonl lies beside it). Written to
--out (default SOURCE_DIR/audit/):
  label_issues.csv     the flagged examples, least self-confident first: index in the predictions
                       file, given and suggested label (the most probable one), self-confidence (the
                       probability of the given label), the suggested label's probability, fold, text.
                       Multi-label: one row per flagged (example, label), given 'present' or 'absent'.
  label_noise.json     per class: examples given it, flagged, threshold, estimated noise rate (share of
                       its given labels that are wrong); the confident joint and its calibrated counts
  confident_joint.png  heat map of the calibrated joint, given label by estimated true label
                       (multi-label: per label, the estimated noise of its present and absent marks)
  tensorboard/         the same figure, noise rates as scalars, the flagged examples as a text table
Only as good as the probabilities: they must come from models that did not train on the examples.
"""
import csv
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from common.cli import OneLineArgumentParser
from common.errors import UserError, exit_on_user_error
from common.plot_labels import plottable
from evaluation.analysis import figure_pixels, markdown_escape
from evaluation.predictions import Predictions, read_predictions
from research.confident_learning import LabelAudit, audit_labels, audit_multi_label
from research.folds import EXAMPLES_FILE, PREDICTIONS_FILE

ISSUES_CSV, NOISE_JSON, JOINT_PNG = "label_issues.csv", "label_noise.json", "confident_joint.png"
PRESENCE = ("absent", "present")


def source_files(source: Path) -> tuple[Path, Path | None]:
    """(predictions file, examples.jsonl or None)."""
    file = source / PREDICTIONS_FILE if source.is_dir() else source
    if source.is_dir() and not file.is_file():
        raise UserError(f"{source}: no {PREDICTIONS_FILE} (give an out-of-fold directory or a predictions .npz)")
    examples = file.parent / EXAMPLES_FILE
    return file, examples if examples.is_file() else None


def read_examples(path: Path | None, predictions: Predictions) -> dict[int, dict]:
    """index -> {text, fold}; empty without an examples file."""
    if path is None:
        return {}
    rows = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
                rows[int(row["index"])] = row
            except (ValueError, KeyError, TypeError) as e:
                raise UserError(f"{path}:{number}: not an examples row ({e})") from None
    missing = [int(i) for i in predictions.index if int(i) not in rows]
    if missing:
        raise UserError(f"{path}: no example {missing[0]} of the predictions file (not its examples)")
    return rows


def text_of(row: dict | None) -> str:
    if row is None:
        return ""
    return row["text"] if "text_b" not in row else f"{row['text']} [SEP] {row['text_b']}"


def single_label_rows(audit: LabelAudit, predictions: Predictions, examples: dict) -> list[dict]:
    rows = []
    for rank, i in enumerate(audit.ranked_issues(), start=1):
        example = examples.get(int(predictions.index[i]))
        rows.append({"rank": rank, "index": int(predictions.index[i]),
                     "given": predictions.labels[predictions.gold[i]],
                     "suggested": predictions.labels[audit.suggested[i]],
                     "self_confidence": round(float(audit.self_confidence[i]), 6),
                     "suggested_probability": round(float(predictions.probabilities[i, audit.suggested[i]]), 6),
                     "fold": "" if example is None else example.get("fold", ""), "text": text_of(example)})
    return rows


def multi_label_rows(audits: list[LabelAudit], predictions: Predictions, examples: dict) -> list[dict]:
    flagged = [(audit.self_confidence[i], i, k) for k, audit in enumerate(audits) for i in np.flatnonzero(audit.issues)]
    rows = []
    for rank, (confidence, i, k) in enumerate(sorted(flagged), start=1):
        example = examples.get(int(predictions.index[i]))
        given = int(predictions.gold[i, k])
        rows.append({"rank": rank, "index": int(predictions.index[i]), "label": predictions.labels[k],
                     "given": PRESENCE[given], "suggested": PRESENCE[1 - given],
                     "self_confidence": round(float(confidence), 6),
                     "fold": "" if example is None else example.get("fold", ""), "text": text_of(example)})
    return rows


def class_report(audit: LabelAudit, names: list[str], given: np.ndarray) -> dict:
    n = len(given)
    return {"classes": {name: {"examples": int(np.sum(given == j)), "flagged": int(np.sum(audit.issues & (given == j))),
                               "threshold": float(audit.thresholds[j]), "noise_rate": float(audit.noise_rates()[j])}
                        for j, name in enumerate(names)},
            "confident_joint": audit.confident_joint.tolist(),
            "calibrated_joint_counts": (audit.joint * n).round(2).tolist()}


def joint_figure(joint_counts: np.ndarray, names: list[str]) -> Figure:
    """The calibrated joint as counts, coloured by the share of each given label's row."""
    shares = joint_counts / np.maximum(joint_counts.sum(1, keepdims=True), 1e-12)
    n = len(names)
    side = max(3.5, 0.55 * n + 1.5)
    fig = Figure(figsize=(side + 0.5, side), layout="constrained")
    ax = fig.subplots()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set(title="confident joint (calibrated counts)", xlabel="estimated true label", ylabel="given label",
           xticks=range(n), yticks=range(n))
    ax.set_xticklabels(plottable(names), rotation=45, ha="right")
    ax.set_yticklabels(plottable(names))
    if n <= 30:
        for (row, col), value in np.ndenumerate(joint_counts):
            ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if shares[row, col] > 0.5 else "black")
    return fig


def noise_figure(audits: list[LabelAudit], names: list[str]) -> Figure:
    """Multi-label: per label, the estimated share of wrong 'present' and wrong 'absent' marks."""
    rates = np.asarray([[a.noise_rates()[1], a.noise_rates()[0]] for a in audits])
    fig = Figure(figsize=(4.5, max(3.0, 0.3 * len(names) + 1.2)), layout="constrained")
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=max(rates.max(), 1e-6), aspect="auto")
    ax.set(title="estimated label noise", xticks=[0, 1], yticks=range(len(names)))
    ax.set_xticklabels(["given present,\ntruly absent", "given absent,\ntruly present"])
    ax.set_yticklabels(plottable(names))
    for (row, col), value in np.ndenumerate(rates):
        ax.text(col, row, f"{value:.3f}", ha="center", va="center", fontsize=8)
    return fig


def write_csv(rows: list[dict], path: Path, columns: list[str]):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def log_tensorboard(out: Path, figure: Figure, noise: dict, rows: list[dict], shown: int):
    from torch.utils.tensorboard import SummaryWriter  # here: the audit itself needs no torch

    with SummaryWriter(log_dir=str(out / "tensorboard")) as writer:
        writer.add_image("audit/confident_joint", figure_pixels(figure), 0, dataformats="HWC")
        for name, values in noise.items():
            writer.add_scalar(f"audit/noise_rate/{name}", values["noise_rate"], 0)
        header = [c for c in rows[0] if c not in ("rank", "fold")] if rows else []
        table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        table += ["| " + " | ".join(markdown_escape(str(r[c])) for c in header) + " |" for r in rows[:shown]]
        writer.add_text("audit/label_issues", "\n".join(table), 0)


def run_audit(source: Path, out: Path | None, shown: int) -> tuple[dict, list[dict]]:
    """Writes the audit's files; returns its report (label_noise.json) and the flagged rows."""
    file, examples_file = source_files(source)
    predictions = read_predictions(file)
    examples = read_examples(examples_file, predictions)
    out = out or file.parent / "audit"
    names = predictions.labels
    if predictions.multi_label:
        audits = audit_multi_label(predictions.probabilities, predictions.gold)
        rows = multi_label_rows(audits, predictions, examples)
        per_label = {name: class_report(a, list(PRESENCE), np.asarray(predictions.gold[:, k], np.int64))
                     for k, (name, a) in enumerate(zip(names, audits))}
        noise = {name: {"noise_rate": float(a.joint[1, 0] + a.joint[0, 1])} for name, a in zip(names, audits)}
        report = {"examples": len(predictions), "multi_label": True, "flagged": len(rows), "labels": per_label}
        figure, columns = noise_figure(audits, names), ["rank", "index", "label", "given", "suggested",
                                                         "self_confidence", "fold", "text"]
    else:
        audit = audit_labels(predictions.probabilities, predictions.gold)
        rows = single_label_rows(audit, predictions, examples)
        report = {"examples": len(predictions), "multi_label": False, "flagged": len(rows),
                  **class_report(audit, names, np.asarray(predictions.gold))}
        noise = report["classes"]
        figure = joint_figure(audit.joint * len(predictions), names)
        columns = ["rank", "index", "given", "suggested", "self_confidence", "suggested_probability", "fold", "text"]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / ISSUES_CSV, columns)
    (out / NOISE_JSON).write_text(json.dumps({"source": str(file), **report}, indent=2, ensure_ascii=False) + "\n")
    figure.savefig(out / JOINT_PNG, dpi=120)
    log_tensorboard(out, figure, noise, rows, shown)
    return report, rows


def summary(report: dict, rows: list[dict], shown: int, out: Path) -> str:
    lines = [f"{report['flagged']} likely label errors flagged among {report['examples']} examples"
             + (" (example, label) pairs" if report["multi_label"] else "")]
    if not report["multi_label"]:
        lines += ["", "class  given  flagged  estimated noise rate"]
        lines += [f"{name}  {c['examples']}  {c['flagged']}  {c['noise_rate']:.3f}"
                  for name, c in report["classes"].items()]
    if rows:
        lines += ["", f"least self-confident {min(shown, len(rows))}:"]
        for r in rows[:shown]:
            label = f"{r['label']}: " if report["multi_label"] else ""
            lines.append(f"  #{r['index']} {label}given {r['given']} -> {r['suggested']} "
                         f"(p(given) {r['self_confidence']:.3f})  {' '.join(r['text'].split())[:120]}")
    lines += ["", f"wrote {out / ISSUES_CSV}, {out / NOISE_JSON}, {out / JOINT_PNG} and {out / 'tensorboard'}"]
    return "\n".join(lines) + "\n"


@exit_on_user_error
def main(argv: list[str]):
    parser = OneLineArgumentParser(prog="python -m research.audit", description=__doc__.split("\n")[0],
                                   usage_line="python -m research.audit SOURCE [--out DIR] [--show N]")
    parser.add_argument("source", type=Path, help="out-of-fold directory or predictions .npz")
    parser.add_argument("--out", type=Path, help="directory of the audit's files (default SOURCE_DIR/audit)")
    parser.add_argument("--show", type=int, default=10, help="flagged examples printed (and in TensorBoard)")
    args = parser.parse_args(argv)
    if args.show < 0:
        raise UserError(f"--show {args.show}: give 0 or more")
    if not args.source.exists():
        raise UserError(f"{args.source}: no such file or directory")
    report, rows = run_audit(args.source, args.out, args.show)
    out = args.out or source_files(args.source)[0].parent / "audit"
    print(summary(report, rows, args.show, out), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
