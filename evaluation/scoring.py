"""Loss and metrics of a classifier on a labelled dataset, and the outputs they came from.

Single-label: metrics of the argmax, the loss is the negative log-likelihood of the probabilities
(softmax of logits / temperature: a calibrated checkpoint's loss is its calibrated NLL), and the
expected calibration error. Multi-label: the metrics of evaluation/metrics.py multilabel_metrics at the
decision's thresholds, and the binary cross-entropy. Neither loss carries the training loss's class
weights or smoothing: validation loss stays the plain likelihood, comparable across runs.
"""
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from evaluation.calibration import expected_calibration_error
from inference.batches import predict_outputs
from evaluation.metrics import classification_metrics, multilabel_metrics
from inference.decision import Decision
from evaluation.thresholds import tune_thresholds


@dataclass
class Evaluation:
    metrics: dict  # what `evaluate` returns
    logits: np.ndarray  # (N, classes) float32, dataset order
    labels: np.ndarray  # (N,) gold label ids; multi-label: (N, classes) 0/1
    vectors: np.ndarray | None = None  # (N, hidden) pooled sentence vectors, when asked for
    decision: Decision = field(default_factory=Decision)
    probabilities: np.ndarray | None = None  # (N, classes), as the decision computes them
    predicted: np.ndarray | None = None  # (N,) ids; multi-label: (N, classes) 0/1

    def __post_init__(self):
        if self.probabilities is None:
            self.probabilities = self.decision.probabilities(self.logits)
        if self.predicted is None:
            self.predicted = self.decision.predict(self.probabilities)

    @property
    def multi_label(self) -> bool:
        return self.decision.multi_label


def score_outputs(logits: np.ndarray, labels: np.ndarray, label_names: list[str], decision: Decision = Decision(),
                  vectors: np.ndarray | None = None) -> Evaluation:
    probabilities = decision.probabilities(logits)
    predicted = decision.predict(probabilities)
    z, gold = torch.from_numpy(logits), torch.from_numpy(labels)
    if decision.multi_label:
        loss = F.binary_cross_entropy_with_logits(z, gold.float()).item()
        metrics = {"loss": loss, **multilabel_metrics(labels, predicted, probabilities, label_names)}
    else:
        loss = F.cross_entropy(z / decision.temperature, gold).item()
        metrics = {"loss": loss, **classification_metrics(labels, predicted, label_names),
                   "ece": expected_calibration_error(probabilities, labels)}
    return Evaluation(metrics, logits, labels, vectors, decision, probabilities, predicted)


def evaluate_with_outputs(model, loader, device, autocast, label_names, with_vectors=False,
                          decision: Decision = Decision()) -> Evaluation:
    """One pass over `loader`: the metrics plus the logits (and vectors) for analysis (evaluation/analysis.py)."""
    logits, vectors = predict_outputs(model, loader, device, autocast, with_vectors)
    return score_outputs(logits, loader.dataset.labels, label_names, decision, vectors)


def evaluate(model, loader, device, autocast, label_names, decision: Decision = Decision()) -> dict:
    return evaluate_with_outputs(model, loader, device, autocast, label_names, decision=decision).metrics


def validation_decision(logits: np.ndarray, labels: np.ndarray, tcfg) -> Decision:
    """How a validation pass decides: argmax (single-label); multi-label, trainer.threshold for every label or,
    when null, the thresholds tuned on these very outputs (trainer.threshold_scope / threshold_metric)."""
    if labels.ndim == 1:
        return Decision()
    if tcfg.threshold is not None:
        return Decision(True, np.full(labels.shape[1], tcfg.threshold, np.float32))
    probabilities = torch.sigmoid(torch.from_numpy(logits)).numpy()
    return Decision(True, tune_thresholds(probabilities, labels, tcfg.threshold_scope, tcfg.threshold_metric))
