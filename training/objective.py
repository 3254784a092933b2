"""What training minimises (the loss config group, conf/loss/).

Single-label: softmax cross-entropy, optionally class-weighted (loss.class_weights) and label-smoothed
(loss.label_smoothing). Multi-label: one sigmoid per label, binary cross-entropy, optionally with
loss.pos_weight on each label's positives. Both are summed over examples and divided by the examples
of the optimizer step (train_step), so micro-batching does not change them.

How logits become decisions at inference is inference/decision.py.
"""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from common.errors import UserError


@dataclass
class Objective:
    multi_label: bool = False
    weights: torch.Tensor | None = None  # (C,): class weights (single-label) or pos_weight (multi-label)
    label_smoothing: float = 0.0

    def summed_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss summed over the batch's examples, in float32."""
        logits, weights = logits.float(), self.weights  # weights on the logits' device: Objective.to
        if self.multi_label:
            # Mean over labels, as BertForSequenceClassification's BCEWithLogitsLoss (mean over all
            # B x C entries) once divided by the batch: the same gradient scale as the Trainer's.
            per_entry = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=weights, reduction="none")
            return per_entry.mean(-1).sum()
        return F.cross_entropy(logits, labels, weight=weights, label_smoothing=self.label_smoothing,
                               reduction="sum")

    def to(self, device) -> "Objective":
        weights = None if self.weights is None else self.weights.to(device)
        return Objective(self.multi_label, weights, self.label_smoothing)


def build_objective(loss_cfg, label_names: list[str], train_labels: np.ndarray) -> tuple[Objective, dict | None]:
    """The objective for these labels, and the per-label weights it uses by name (None: unweighted), for the
    log, metrics.json and the checkpoint. `train_labels`: (N,) ids or (N, C) multi-hot of the training split."""
    multi_label = train_labels.ndim == 2
    if multi_label:
        if loss_cfg.class_weights is not None:
            raise UserError("loss.class_weights is for single-label data; multi-label data takes loss.pos_weight")
        if loss_cfg.label_smoothing:
            raise UserError(f"loss.label_smoothing={loss_cfg.label_smoothing} is for single-label data "
                            "(softmax cross-entropy); set it to 0 for multi-label data")
        weights = label_weights(loss_cfg.pos_weight, "loss.pos_weight", label_names,
                                lambda: balanced_pos_weight(train_labels))
    else:
        if loss_cfg.pos_weight is not None:
            raise UserError("loss.pos_weight is for multi-label data; single-label data takes loss.class_weights")
        weights = label_weights(loss_cfg.class_weights, "loss.class_weights", label_names,
                                lambda: balanced_class_weights(train_labels, len(label_names)))
    tensor = None if weights is None else torch.tensor(weights, dtype=torch.float32)
    named = None if weights is None else {name: round(float(w), 6) for name, w in zip(label_names, weights)}
    return Objective(multi_label, tensor, float(loss_cfg.label_smoothing)), named


def describe_objective(objective: Objective, label_names: list[str], named_weights: dict | None, tcfg) -> str:
    """The run log's line about the loss (and, multi-label, how thresholds are chosen)."""
    if objective.multi_label:
        thresholds = (f"fixed at {tcfg.threshold}" if tcfg.threshold is not None
                      else f"tuned on validation ({tcfg.threshold_scope}, for {tcfg.threshold_metric})")
        line = f"multi-label: {len(label_names)} sigmoid outputs, binary cross-entropy; thresholds {thresholds}"
    else:
        line = "single-label: softmax cross-entropy" + (
            f", label smoothing {objective.label_smoothing:g}" if objective.label_smoothing else "")
    if named_weights:
        kind = "pos_weight" if objective.multi_label else "class weights"
        line += f"\n{kind}: " + ", ".join(f"{name} {w:.3g}" for name, w in named_weights.items())
    return line


def label_weights(value, key: str, label_names: list[str], balanced) -> np.ndarray | None:
    if value is None:
        return None
    if value == "balanced":
        return balanced()
    unknown = [name for name in value if name not in label_names]
    if unknown:
        raise UserError(f"{key}.{unknown[0]}: not one of the labels ({', '.join(label_names)})")
    return np.asarray([float(value.get(name, 1.0)) for name in label_names])  # unnamed labels weigh 1


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """n / (classes x count), scikit-learn's compute_class_weight('balanced'); a class absent from the
    training split (its weight would be infinite) gets 1: no example carries it anyway."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 1.0)


def balanced_pos_weight(labels: np.ndarray) -> np.ndarray:
    """Negatives / positives per label (the pos_weight torch's BCEWithLogitsLoss documents); a label with
    no positive in training gets 1."""
    positives = labels.sum(0).astype(np.float64)
    return np.where(positives > 0, (len(labels) - positives) / np.maximum(positives, 1), 1.0)
