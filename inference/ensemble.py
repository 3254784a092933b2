"""Several checkpoints as one classifier, for predict.py / evaluate.py to take several checkpoints: the
mean of their probabilities (the offline counterpart is research/ensemble.py, from predictions files)."""
import numpy as np

from common.errors import UserError
from inference.decision import Decision


class EnsemblePredictor:
    """The predictors' (inference/predictor.py, torch or ONNX Runtime) mean probabilities, each after its
    own checkpoint's temperature; the label is their argmax. Single-label checkpoints with the same labels
    in the same order only: a multi-label ensemble would need thresholds of its own, tuned for it."""

    def __init__(self, predictors: list, names: list[str]):
        """`names`: what to call each predictor in an error (its checkpoint directory)."""
        if len(predictors) < 2:
            raise UserError(f"an ensemble needs at least two checkpoints, got {len(predictors)}")
        for predictor, name in zip(predictors, names):
            if predictor.decision.multi_label:
                raise UserError(f"{name}: multi-label checkpoint; ensembles average single-label checkpoints only")
            if predictor.labels != predictors[0].labels:
                raise UserError(f"{name} and {names[0]} have different labels: {predictor.labels} vs "
                                f"{predictors[0].labels}")
        self.predictors, self.labels = predictors, predictors[0].labels
        self.decision = Decision()  # argmax; the members' temperatures are already in their probabilities

    def probabilities(self, texts: list[str], texts_b=None) -> np.ndarray:
        return np.mean([p.probabilities(texts, texts_b) for p in self.predictors], axis=0, dtype=np.float64
                       ).astype(np.float32)
