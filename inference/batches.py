"""Running a model over batches: the evaluation loader, logits (and pooled vectors) put back in
dataset order, the batches a predictor makes of texts, and a finished model prepared for inference.
Training's validation, evaluate.py, the baselines and both predictor runtimes share it."""
import numpy as np
import torch
from torch.utils.data import DataLoader

from common.errors import UserError
from data.dataset import ClassificationDataset, LengthGroupedBatchSampler
from inference.runtime import autocast
from model.packed_linear import pack_linears


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


def text_batches(dataset: ClassificationDataset, batch_size: int):
    """The batches a predictor runs: a prompt's line (or any texts that fit one batch) as one batch, with no
    loader or sorting; more texts in length-sorted batches, whose `indices` restore the input order."""
    if len(dataset) <= batch_size:
        return [dataset.collate(np.arange(len(dataset)))]
    return eval_loader(dataset, batch_size)


def prepare_for_inference(model, device, precision: str, pack_weights: bool):
    """The model in eval mode and, on CPU with pack_weights, its Linear layers prepacked for oneDNN in
    `precision` (model/packed_linear.py; its speed-up: BENCHMARKS.md → Inference). Only for a model done
    training. Returns the autocast context to run it under."""
    mixed_precision = autocast(torch.device(device), precision)  # checks `precision` first
    if not isinstance(pack_weights, bool):  # Hydra passes `pack_weights=yes` through as a string
        raise UserError(f"pack_weights={pack_weights!r}: expected true or false")
    model.eval()
    if pack_weights and torch.device(device).type == "cpu":
        pack_linears(model, precision)
    return mixed_precision
