"""Per-example predictions of a classifier on one split, kept so that runs can be compared (research/compare.py)
and recalibrated without running a model again.

One compressed NumPy archive per split, `predictions_<split>.npz` beside metrics.json (evaluate.py:
`predictions=FILE`). Arrays, row i = the i-th example of the split as read from its file:
  index          (N,) int64     position of the example in the split
  gold           (N,) int64     label id; multi-label: (N, C) uint8, 1 where the label is gold
  predicted      (N,) int64     argmax; multi-label: (N, C) uint8, 1 where the probability passes its threshold
  probabilities  (N, C) float32 softmax of logits / temperature; multi-label: sigmoid of the logits
  logits         (N, C) float32 as the head wrote them (before any temperature)
  labels         (C,) str       label names in id order
  multi_label    ()  bool
  temperature    ()  float      1.0 unless the checkpoint was calibrated (trainer.calibrate)
  thresholds     (C,) float32   multi-label decision thresholds (empty for single-label)
  texts_sha256   ()  str        digest of the split's texts in order (data/digest.py): research.compare
                                refuses two files whose examples differ; absent from files written before it
Loading needs no pickle (allow_pickle=False): every array is plain numbers or fixed-width text.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.output_paths import atomic_output

FIELDS = ("index", "gold", "predicted", "probabilities", "logits", "labels", "multi_label", "temperature",
          "thresholds")


@dataclass
class Predictions:
    index: np.ndarray
    gold: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    logits: np.ndarray
    labels: list[str]
    multi_label: bool = False
    temperature: float = 1.0
    thresholds: np.ndarray | None = None
    texts_sha256: str | None = None  # None: a file written before the digest was kept

    def __len__(self):
        return len(self.index)


def predictions_path(run_dir, split: str) -> Path:
    return Path(run_dir) / f"predictions_{split}.npz"


def write_predictions(path, predictions: Predictions):
    """Written to a temporary file and renamed: a reader never sees half an archive, and a failed write
    (disk full: numpy raises what zipfile does) leaves no temporary file."""
    path = Path(path)
    multi = predictions.multi_label
    arrays = {"index": np.asarray(predictions.index, np.int64),
              "gold": np.asarray(predictions.gold, np.uint8 if multi else np.int64),
              "predicted": np.asarray(predictions.predicted, np.uint8 if multi else np.int64),
              "probabilities": np.asarray(predictions.probabilities, np.float32),
              "logits": np.asarray(predictions.logits, np.float32),
              "labels": np.asarray(predictions.labels, dtype=str),
              "multi_label": np.asarray(multi),
              "temperature": np.asarray(float(predictions.temperature)),
              "thresholds": np.asarray([] if predictions.thresholds is None else predictions.thresholds, np.float32)}
    if predictions.texts_sha256 is not None:
        arrays["texts_sha256"] = np.asarray(predictions.texts_sha256)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name not ending in it
            np.savez_compressed(f, **arrays)


def read_predictions(path) -> Predictions:
    path = Path(path)
    if path.is_dir():  # a run directory: its test predictions
        path = predictions_path(path, "test")
    if not path.is_file():
        raise UserError(f"{path}: no predictions file (train.py writes predictions_<split>.npz beside metrics.json)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in FIELDS if name not in archive.files]
            if missing:
                raise UserError(f"{path}: not a predictions file (no {missing[0]!r} array)")
            a = {name: archive[name] for name in FIELDS}
            texts_sha256 = str(archive["texts_sha256"]) if "texts_sha256" in archive.files else None
    except (OSError, ValueError) as e:  # not a zip / not .npy members
        raise UserError(f"{path}: not a readable predictions file ({e})") from None
    multi = bool(a["multi_label"])
    return Predictions(a["index"], a["gold"], a["predicted"], a["probabilities"], a["logits"],
                       [str(name) for name in a["labels"]], multi, float(a["temperature"]),
                       a["thresholds"] if multi else None, texts_sha256)


def predictions_of(evaluation, label_names: list[str], texts_sha256: str) -> Predictions:
    """From an evaluation.scoring.Evaluation (dataset order = the split's order) and the digest of the
    split's texts (data/digest.py texts_digest)."""
    decision = evaluation.decision
    return Predictions(np.arange(len(evaluation.labels)), evaluation.labels, evaluation.predicted,
                       evaluation.probabilities, evaluation.logits, label_names, decision.multi_label,
                       decision.temperature, decision.thresholds, texts_sha256)
