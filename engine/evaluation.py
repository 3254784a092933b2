"""Loss and metrics of a classifier on a labelled dataset."""
import torch
import torch.nn.functional as F

from engine.inference import predict_logits
from engine.metrics import classification_metrics


def evaluate(model, loader, device, autocast, label_names) -> dict:
    logits = predict_logits(model, loader, device, autocast)
    labels = loader.dataset.labels
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    return {"loss": loss, **classification_metrics(labels, logits.argmax(-1), label_names)}
