"""Classification metrics and their plain-text tables: single-label (one class per text) and multi-label."""
import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score, hamming_loss,
                             precision_recall_fscore_support)

from common.plot_labels import MAX_DRAWN_CLASSES


def classification_metrics(y_true, y_pred, label_names: list[str]) -> dict:
    ids = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=ids, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=ids, average="weighted", zero_division=0)),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(label_names)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }


def multilabel_metrics(gold: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray,
                       label_names: list[str]) -> dict:
    """gold/predicted: (N, C) 0/1. `accuracy` is subset accuracy (every label of a text right), so that
    trainer.monitor=accuracy means the same strict thing. mean_ap is threshold-free: the mean over labels
    with a gold positive of the average precision of their probabilities. `false_positives` /
    `false_negatives` per label: predicted without gold, gold missed."""
    gold, predicted = np.asarray(gold).astype(int), np.asarray(predicted).astype(int)
    ids = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, labels=ids, zero_division=0)
    present = gold.sum(0) > 0
    scores = {average: float(f1_score(gold, predicted, labels=ids, average=average, zero_division=0))
              for average in ("micro", "macro", "samples", "weighted")}
    return {
        "accuracy": float(accuracy_score(gold, predicted)),
        "micro_f1": scores["micro"], "macro_f1": scores["macro"], "samples_f1": scores["samples"],
        "weighted_f1": scores["weighted"],
        "hamming_loss": float(hamming_loss(gold, predicted)),
        "mean_ap": float(average_precision_score(gold[:, present], probabilities[:, present], average="macro")),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i]),
                             "false_positives": int(((predicted[:, i] == 1) & (gold[:, i] == 0)).sum()),
                             "false_negatives": int(((predicted[:, i] == 0) & (gold[:, i] == 1)).sum())}
                      for i, name in enumerate(label_names)},
        "labels_per_text": {"gold": float(gold.sum(1).mean()), "predicted": float(predicted.sum(1).mean())},
    }


def format_report(metrics: dict, label_names: list[str]) -> str:
    if "micro_f1" in metrics:
        return format_multilabel_report(metrics, label_names)
    width = max(8, *(len(n) for n in label_names))
    lines = [f"accuracy {metrics['accuracy']:.4f}   macro-F1 {metrics['macro_f1']:.4f}   "
             f"weighted-F1 {metrics['weighted_f1']:.4f}", "",
             f"{'class':<{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
    for name, m in metrics["per_class"].items():
        lines.append(f"{name:<{width}} {m['precision']:>9.4f} {m['recall']:>9.4f} {m['f1']:>9.4f} {m['support']:>8}")
    if len(label_names) > MAX_DRAWN_CLASSES:  # a 1,000-column table reads as nothing on a terminal
        lines += ["", f"confusion matrix: {len(label_names)} classes, too many to print "
                      "(metrics.json holds it; analysis/ draws the classes with the most errors)"]
        return "\n".join(lines)
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * width + " " + " ".join(f"{n[:7]:>7}" for n in label_names)]
    for name, row in zip(label_names, np.asarray(metrics["confusion_matrix"])):
        lines.append(f"{name:<{width}} " + " ".join(f"{v:>7}" for v in row))
    return "\n".join(lines)


def format_multilabel_report(metrics: dict, label_names: list[str]) -> str:
    width = max(8, *(len(n) for n in label_names))
    lines = [f"micro-F1 {metrics['micro_f1']:.4f}   macro-F1 {metrics['macro_f1']:.4f}   "
             f"samples-F1 {metrics['samples_f1']:.4f}   mAP {metrics['mean_ap']:.4f}",
             f"subset accuracy {metrics['accuracy']:.4f}   Hamming loss {metrics['hamming_loss']:.4f}   labels per "
             f"text: gold {metrics['labels_per_text']['gold']:.2f}, predicted {metrics['labels_per_text']['predicted']:.2f}",
             "", f"{'label':<{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8} {'pred-no-gold':>12} "
                 f"{'gold-missed':>11}"]
    for name, m in metrics["per_class"].items():
        lines.append(f"{name:<{width}} {m['precision']:>9.4f} {m['recall']:>9.4f} {m['f1']:>9.4f} {m['support']:>8} "
                     f"{m['false_positives']:>12} {m['false_negatives']:>11}")
    return "\n".join(lines)
