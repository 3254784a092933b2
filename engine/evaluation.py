"""Running a classifier over a dataset: logits in dataset order, loss and metrics."""
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from data.dataset import ClassificationDataset, LengthGroupedBatchSampler
from engine.metrics import classification_metrics


def eval_loader(dataset: ClassificationDataset, batch_size: int, group_by_length=True, **loader_kwargs):
    # Sorted by length: almost no padding. Predictions are put back in dataset order afterwards.
    sampler = LengthGroupedBatchSampler(dataset.valid_length, batch_size, shuffle=False,
                                        group_by_length=group_by_length)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate, **loader_kwargs)


@torch.inference_mode()
def predict_logits(model, loader, device, autocast) -> np.ndarray:
    """float32 logits (N, classes) in dataset order."""
    model.eval()
    chunks, order = [], []
    for batch in loader:
        batch = batch.to(device, non_blocking=True)
        with autocast:
            logits = model(batch.token_ids, batch.valid_length, batch.segment_ids)
        chunks.append(logits.float().cpu())
        order.append(batch.indices.cpu())
    logits, order = torch.cat(chunks), torch.cat(order)
    out = torch.empty_like(logits)
    out[order] = logits
    return out.numpy()


def evaluate(model, loader, device, autocast, label_names) -> dict:
    logits = predict_logits(model, loader, device, autocast)
    labels = loader.dataset.labels
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    return {"loss": loss, **classification_metrics(labels, logits.argmax(-1), label_names)}
