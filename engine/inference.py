"""Running a classifier over texts or a dataset: logits and probabilities in input order."""
import numpy as np
import torch
from torch.utils.data import DataLoader

from data.dataset import ClassificationDataset, LengthGroupedBatchSampler


def eval_loader(dataset: ClassificationDataset, batch_size: int, group_by_length=True, **loader_kwargs):
    # Sorted by length: almost no padding. Predictions are put back in dataset order afterwards.
    sampler = LengthGroupedBatchSampler(dataset.valid_length, batch_size, shuffle=False,
                                        group_by_length=group_by_length)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate, **loader_kwargs)


@torch.inference_mode()
def predict_outputs(model, loader, device, autocast, with_vectors=False) -> tuple[np.ndarray, np.ndarray | None]:
    """float32 logits (N, classes) and, with_vectors, the pooled sentence vectors (N, hidden) the
    head read, both in dataset order; vectors is None otherwise."""
    model.eval()
    logit_chunks, vector_chunks, order = [], [], []
    for batch in loader:
        batch = batch.to(device, non_blocking=True)
        with autocast:
            if with_vectors:
                vectors = model.sentence_vectors(batch.token_ids, batch.valid_length, batch.segment_ids)
                logits = model.classify(vectors)
                vector_chunks.append(vectors.float().cpu())
            else:
                logits = model(batch.token_ids, batch.valid_length, batch.segment_ids)
        logit_chunks.append(logits.float().cpu())
        order.append(batch.indices.cpu())
    order = torch.cat(order)
    return in_dataset_order(logit_chunks, order), in_dataset_order(vector_chunks, order) if with_vectors else None


def in_dataset_order(chunks: list[torch.Tensor], order: torch.Tensor) -> np.ndarray:
    rows = torch.cat(chunks)
    out = torch.empty_like(rows)
    out[order] = rows
    return out.numpy()


def predict_logits(model, loader, device, autocast) -> np.ndarray:
    """float32 logits (N, classes) in dataset order."""
    return predict_outputs(model, loader, device, autocast)[0]


class Predictor:
    """A loaded checkpoint that turns texts into class probabilities (predict.py, benchmarks)."""

    def __init__(self, loaded, device, autocast, batch_size: int = 64):
        self.model, self.transform, self.labels = loaded.model, loaded.transform, loaded.info.labels
        self.device, self.autocast, self.batch_size = device, autocast, batch_size

    def probabilities(self, texts: list[str], texts_b=None) -> np.ndarray:
        dataset = ClassificationDataset(texts, None, self.transform, texts_b)
        logits = predict_logits(self.model, eval_loader(dataset, self.batch_size), self.device, self.autocast)
        return torch.from_numpy(logits).softmax(-1).numpy()
