"""Several checkpoints as one classifier: the mean of their probabilities. predict.py and evaluate.py take
several checkpoints this way (checkpoint=a,b,c or a quoted glob); research/ensemble.py does the same from
predictions files, offline."""
import numpy as np

from common.errors import UserError
from common.path_lists import listed_paths
from inference.decision import Decision
from inference.predictor import load_predictor


def mean_probabilities(members: list[np.ndarray]) -> np.ndarray:
    """The members' (N, C) probabilities averaged in float64."""
    return np.mean([np.asarray(p, np.float64) for p in members], axis=0)


def as_logits(probabilities: np.ndarray) -> np.ndarray:
    """Logits whose softmax gives `probabilities` back (temperature 1): their logarithm, with 0 kept finite."""
    return np.log(np.maximum(probabilities, np.finfo(np.float32).tiny)).astype(np.float32)


def check_member(name: str, labels: list[str], multi_label: bool, first_name: str, first_labels: list[str]):
    if multi_label:
        raise UserError(f"{name}: multi-label checkpoint; ensembles average single-label checkpoints only")
    if labels != first_labels:
        raise UserError(f"{name} and {first_name} have different labels: {labels} vs {first_labels}")


def check_members(members: list, names: list[str]):
    """`members`: predictors (`.labels`, `.decision`)."""
    if len(members) < 2:
        raise UserError(f"an ensemble needs at least two checkpoints, got {len(members)}")
    for member, name in zip(members, names):
        check_member(name, member.labels, member.decision.multi_label, names[0], members[0].labels)


class EnsemblePredictor:
    """The predictors' (inference/predictor.py, torch or ONNX Runtime) mean probabilities, each after its
    own checkpoint's temperature; the label is their argmax. Single-label checkpoints with the same labels
    in the same order only: a multi-label ensemble would need thresholds of its own, tuned for it."""

    def __init__(self, predictors: list, names: list[str]):
        """`names`: what to call each predictor in an error (its checkpoint directory)."""
        check_members(predictors, names)
        self.predictors, self.names, self.labels = predictors, names, predictors[0].labels
        self.decision = Decision()  # argmax; the members' temperatures are already in their probabilities

    def probabilities(self, texts: list[str], texts_b=None) -> np.ndarray:
        return mean_probabilities([p.probabilities(texts, texts_b) for p in self.predictors]).astype(np.float32)


def load_classifier(checkpoint: str, device, **predictor_options):
    """predict.py's classifier for `checkpoint=`: one checkpoint directory's predictor, or for several
    (comma-separated or a glob) their EnsemblePredictor. Options: inference/predictor.py load_predictor's."""
    paths = listed_paths(checkpoint)
    predictors = [load_predictor(path, device, **predictor_options) for path in paths]
    return predictors[0] if len(paths) == 1 else EnsemblePredictor(predictors, [str(p) for p in paths])
