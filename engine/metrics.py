"""Classification metrics and their plain-text tables."""
import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


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


def format_report(metrics: dict, label_names: list[str]) -> str:
    width = max(8, *(len(n) for n in label_names))
    lines = [f"accuracy {metrics['accuracy']:.4f}   macro-F1 {metrics['macro_f1']:.4f}   "
             f"weighted-F1 {metrics['weighted_f1']:.4f}", "",
             f"{'class':<{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
    for name, m in metrics["per_class"].items():
        lines.append(f"{name:<{width}} {m['precision']:>9.4f} {m['recall']:>9.4f} {m['f1']:>9.4f} {m['support']:>8}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * width + " " + " ".join(f"{n[:7]:>7}" for n in label_names)]
    for name, row in zip(label_names, np.asarray(metrics["confusion_matrix"])):
        lines.append(f"{name:<{width}} " + " ".join(f"{v:>7}" for v in row))
    return "\n".join(lines)
