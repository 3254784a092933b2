"""Multi-label decision thresholds tuned on validation probabilities (trainer.threshold_scope / threshold_metric).

`global`: one threshold for every label, the grid value with the best metric. `per_label` for macro-F1:
each label's own best threshold (macro-F1 is a mean of per-label F1s, so they separate). `per_label`
for micro-F1 does not separate: coordinate ascent from the best global threshold, one label at a time,
keeping a change only when micro-F1 rises.
"""
import numpy as np

GRID = np.round(np.arange(0.02, 0.99, 0.01), 2)  # candidate thresholds; ties go to the lowest


def true_false_counts(probabilities: np.ndarray, gold: np.ndarray, thresholds: np.ndarray):
    """Per candidate threshold t (rows) and label (columns): true positives, predicted positives, gold
    positives when predicting `probability >= t`."""
    predicted = probabilities[None, :, :] >= thresholds[:, None, None]  # (T, N, C)
    gold = gold.astype(bool)
    tp = (predicted & gold[None]).sum(1)
    return tp, predicted.sum(1), np.broadcast_to(gold.sum(0), tp.shape)


def f1(tp, predicted, gold):
    denominator = predicted + gold
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def tune_thresholds(probabilities: np.ndarray, gold: np.ndarray, scope: str = "per_label",
                    metric: str = "macro_f1") -> np.ndarray:
    """(C,) float32 thresholds maximising `metric` (macro_f1 | micro_f1) of `gold` (N, C) on these probabilities."""
    tp, predicted, positives = true_false_counts(probabilities, gold, GRID)
    if metric == "macro_f1":
        per_label = f1(tp, predicted, positives)  # (T, C)
        if scope == "per_label":
            return GRID[per_label.argmax(0)].astype(np.float32)
        best = GRID[per_label.mean(1).argmax()]
    elif metric == "micro_f1":
        best = GRID[f1(tp.sum(1), predicted.sum(1), positives.sum(1)).argmax()]
        if scope == "per_label":
            return micro_f1_coordinate_ascent(tp, predicted, positives, best)
    else:
        raise ValueError(f"metric={metric!r}: expected macro_f1 or micro_f1")
    return np.full(gold.shape[1], best, np.float32)


def micro_f1_coordinate_ascent(tp, predicted, positives, start: float, rounds: int = 2) -> np.ndarray:
    labels = tp.shape[1]
    choice = np.full(labels, int(np.argmin(np.abs(GRID - start))))
    columns = np.arange(labels)
    for _ in range(rounds):
        for label in range(labels):
            others = columns != label
            tp_rest = tp[choice[others], columns[others]].sum()
            predicted_rest = predicted[choice[others], columns[others]].sum()
            scores = f1(tp_rest + tp[:, label], predicted_rest + predicted[:, label], positives[0].sum())
            if scores.max() > scores[choice[label]]:
                choice[label] = int(scores.argmax())
    return GRID[choice].astype(np.float32)
