"""How logits become decisions: probabilities from logits (softmax of logits / temperature, or
sigmoids) and the predicted labels (argmax, or every probability at or above its threshold). A
checkpoint's classifier.json stores what it needs (model/checkpoint.py ClassifierInfo); training
tunes it (trainer.calibrate, trainer.threshold), evaluation and prediction apply it.
"""
from dataclasses import dataclass

import numpy as np
import torch

from common.errors import UserError


@dataclass
class Decision:
    """From logits to probabilities and predicted labels, as a checkpoint was configured to decide."""
    multi_label: bool = False
    thresholds: np.ndarray | None = None  # (C,) multi-label; None: 0.5 for every label
    temperature: float = 1.0  # single-label softmax temperature (trainer.calibrate), 1: none

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(np.asarray(logits, np.float32))
        if self.multi_label:
            return torch.sigmoid(z).numpy()
        return torch.softmax(z / self.temperature, -1).numpy()

    def predict(self, probabilities: np.ndarray) -> np.ndarray:
        """(N,) ids, or (N, C) 0/1 multi-label decisions."""
        if self.multi_label:
            thresholds = 0.5 if self.thresholds is None else self.thresholds
            return (probabilities >= thresholds).astype(np.uint8)
        return probabilities.argmax(-1)

    def with_threshold(self, threshold: float | None) -> "Decision":
        """A fixed threshold for every label instead of the stored ones (None: unchanged)."""
        if threshold is None:
            return self
        if not self.multi_label:
            raise UserError(f"threshold={threshold} is for multi-label checkpoints; this one is single-label "
                            "(it predicts the most probable class)")
        return Decision(True, np.full(len(self.thresholds) if self.thresholds is not None else 1, threshold,
                                      np.float32), self.temperature)


def decision_of(info) -> Decision:
    """The Decision a checkpoint's ClassifierInfo describes."""
    thresholds = None if info.thresholds is None else np.asarray(info.thresholds, np.float32)
    return Decision(info.multi_label, thresholds, info.temperature)
