"""Loss and metrics of a classifier on a labelled dataset, and the outputs they came from."""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.inference import predict_outputs
from engine.metrics import classification_metrics


@dataclass
class Evaluation:
    metrics: dict  # what `evaluate` returns
    logits: np.ndarray  # (N, classes) float32, dataset order
    labels: np.ndarray  # (N,) gold label ids
    vectors: np.ndarray | None = None  # (N, hidden) pooled sentence vectors, when asked for


def evaluate_with_outputs(model, loader, device, autocast, label_names, with_vectors=False) -> Evaluation:
    """One pass over `loader`: the metrics plus the logits (and vectors) for analysis (engine/analysis.py)."""
    logits, vectors = predict_outputs(model, loader, device, autocast, with_vectors)
    labels = loader.dataset.labels
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    metrics = {"loss": loss, **classification_metrics(labels, logits.argmax(-1), label_names)}
    return Evaluation(metrics, logits, labels, vectors)


def evaluate(model, loader, device, autocast, label_names) -> dict:
    return evaluate_with_outputs(model, loader, device, autocast, label_names).metrics
