"""Confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 70, 2021): which given labels are likely wrong, from out-of-sample predicted probabilities.
Written here from the paper (cleanlab implements it too, under the AGPL).

1. Per class j, the threshold t_j is the mean probability of j over the examples labelled j (the
   model's average self-confidence in that class).
2. The confident joint C[i][j] counts examples labelled i whose probability of j reaches t_j, each
   counted once, under the class it is most probable for among those it reaches.
3. Calibrated: each row rescaled to the number of examples labelled i, then the whole divided by N,
   an estimate Q of the joint distribution of (given label, true label).
4. Prune by noise rate: for each off-diagonal pair (i, j), the round(N * Q[i][j]) examples labelled i
   with the largest margin p(j) - p(i) are flagged; flags where the given label is also the most
   probable one are dropped (the model agrees with it).

Probabilities must be out-of-sample (out-of-fold, research/folds.py): a model's probabilities on its
own training examples are too confident in their given labels to find their errors.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class LabelAudit:
    thresholds: np.ndarray  # (C,) per-class confidence thresholds t_j (inf for a class no example is given)
    confident_joint: np.ndarray  # (C, C) counts, rows given label, columns label the example is confidently
    joint: np.ndarray  # (C, C) calibrated estimate of P(given = i, true = j)
    issues: np.ndarray  # (N,) bool, flagged as likely mislabelled
    self_confidence: np.ndarray  # (N,) probability of the given label
    suggested: np.ndarray  # (N,) most probable label

    def noise_rates(self) -> np.ndarray:
        """(C,) estimated share of each given label's examples whose true label is another:
        1 - P(true = i | given = i)."""
        given = self.joint.sum(1)
        return np.divide(given - np.diag(self.joint), given, out=np.zeros_like(given), where=given > 0)

    def ranked_issues(self) -> np.ndarray:
        """Indices of the flagged examples, least self-confident first."""
        flagged = np.flatnonzero(self.issues)
        return flagged[np.argsort(self.self_confidence[flagged], kind="stable")]


def class_thresholds(probabilities: np.ndarray, given: np.ndarray) -> np.ndarray:
    classes = probabilities.shape[1]
    counts = np.bincount(given, minlength=classes)
    own = probabilities[np.arange(len(given)), given]  # each example's probability of its given label
    sums = np.bincount(given, weights=own, minlength=classes)
    return np.divide(sums, counts, out=np.full(classes, np.inf), where=counts > 0)


def confident_joint(probabilities: np.ndarray, given: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    classes = probabilities.shape[1]
    reached = probabilities >= thresholds
    counted = reached.any(1)
    confident = np.where(reached, probabilities, -np.inf).argmax(1)
    joint = np.zeros((classes, classes), np.int64)
    np.add.at(joint, (given[counted], confident[counted]), 1)
    return joint


def calibrate(joint_counts: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Rows rescaled to the given label counts, the whole to sum 1. A class given to some examples but
    confidently counted for none keeps its examples on the diagonal (no evidence of noise)."""
    classes = len(joint_counts)
    given_counts = np.bincount(given, minlength=classes).astype(np.float64)
    rows = joint_counts.sum(1, keepdims=True).astype(np.float64)
    calibrated = np.where(rows > 0, joint_counts / np.maximum(rows, 1), np.eye(classes)) * given_counts[:, None]
    return calibrated / max(calibrated.sum(), 1.0)


def prune_by_noise_rate(probabilities: np.ndarray, given: np.ndarray, joint: np.ndarray) -> np.ndarray:
    n, classes = probabilities.shape
    issues = np.zeros(n, bool)
    for i in range(classes):
        labelled_i = np.flatnonzero(given == i)
        for j in range(classes):
            count = int(round(n * joint[i, j]))
            if i == j or count == 0:
                continue
            margin = probabilities[labelled_i, j] - probabilities[labelled_i, i]
            issues[labelled_i[np.argsort(-margin, kind="stable")[:count]]] = True
    return issues & (probabilities.argmax(1) != given)


def audit_labels(probabilities: np.ndarray, given: np.ndarray) -> LabelAudit:
    """Single-label: (N, C) probabilities, (N,) given label ids."""
    probabilities, given = np.asarray(probabilities, np.float64), np.asarray(given, np.int64)
    thresholds = class_thresholds(probabilities, given)
    counts = confident_joint(probabilities, given, thresholds)
    joint = calibrate(counts, given)
    return LabelAudit(thresholds, counts, joint, prune_by_noise_rate(probabilities, given, joint),
                      probabilities[np.arange(len(given)), given], probabilities.argmax(1))


def audit_multi_label(probabilities: np.ndarray, gold: np.ndarray) -> list[LabelAudit]:
    """Multi-label: each label audited on its own, as a two-class problem (absent = 0, present = 1)."""
    probabilities = np.asarray(probabilities, np.float64)
    return [audit_labels(np.stack([1 - probabilities[:, k], probabilities[:, k]], 1), np.asarray(gold[:, k], np.int64))
            for k in range(probabilities.shape[1])]
