"""Running a classifier over texts or a dataset: logits and probabilities in input order."""
import importlib.util
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader

from data.dataset import ClassificationDataset, LengthGroupedBatchSampler
from common.errors import UserError
from engine.objective import decision_of
from engine.runtime import autocast
from model.checkpoint import existing_checkpoint_dir, load_checkpoint
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


class Predictor:
    """A loaded checkpoint that turns texts into class probabilities with torch (predict.py runtime=torch,
    benchmarks): softmax (of logits / the checkpoint's temperature), or one sigmoid per label for a
    multi-label checkpoint, whose `decision` holds its thresholds (`threshold`: one fixed threshold instead).
    Packs the loaded model in place (prepare_for_inference): it is not for saving afterwards."""

    def __init__(self, loaded, device, precision: str = "fp32", batch_size: int = 64, pack_weights: bool = True,
                 threshold: float | None = None):
        self.model, self.transform, self.labels = loaded.model, loaded.transform, loaded.info.labels
        self.device, self.batch_size = device, batch_size
        self.decision = decision_of(loaded.info).with_threshold(threshold)
        self.autocast = prepare_for_inference(self.model, device, precision, pack_weights)

    def probabilities(self, texts: list[str], texts_b=None) -> np.ndarray:
        batches = text_batches(ClassificationDataset(texts, None, self.transform, texts_b), self.batch_size)
        return self.decision.probabilities(predict_logits(self.model, batches, self.device, self.autocast))


def text_batches(dataset: ClassificationDataset, batch_size: int):
    """The batches a predictor runs: a prompt's line (or any texts that fit one batch) as one batch, with no
    loader or sorting; more texts in length-sorted batches, whose `indices` restore the input order."""
    if len(dataset) <= batch_size:
        return [dataset.collate(np.arange(len(dataset)))]
    return eval_loader(dataset, batch_size)


RUNTIMES = ("auto", "torch", "onnx")
ONNX_PACKAGES = ("onnxruntime", "onnx", "onnxscript")  # the runtime, and the exporter its first run needs


def inference_runtime(runtime: str, device, precision: str, interactive: bool = False) -> str:
    """The runtime predict.py uses. auto: ONNX Runtime at the interactive prompt on CPU in fp32, where it
    answers one text fastest; torch everywhere else: oneDNN-packed (model/packed_linear.py), it is faster
    in batches (piped input), starts sooner (one `text=`), and runs bf16 and CUDA. Figures: BENCHMARKS.md
    → Inference."""
    if runtime not in RUNTIMES:
        raise UserError(f"runtime={runtime!r} is not one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return runtime
    on_cpu = torch.device(device).type == "cpu"
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if runtime == "auto":
        if not (interactive and on_cpu and precision == "fp32"):
            return "torch"
        if missing:
            print(f"note: runtime=auto uses torch: {', '.join(missing)} not installed (pip install -r "
                  "requirements-dev.txt for ONNX Runtime)", file=sys.stderr)
            return "torch"
        return "onnx"
    if runtime == "onnx" and not on_cpu:
        raise UserError(f"runtime=onnx runs on the CPU (device={device}): use runtime=torch or auto on CUDA")
    if runtime == "onnx" and precision != "fp32":
        raise UserError(f"runtime=onnx runs fp32 only (precision={precision}): use runtime=torch for bf16")
    if runtime == "onnx" and missing:
        raise UserError(f"runtime=onnx needs {', '.join(missing)}: pip install -r requirements-dev.txt")
    return runtime


def load_predictor(checkpoint, device, runtime: str = "torch", precision: str = "fp32", batch_size: int = 64,
                   pack_weights: bool = True, threshold: float | None = None, interactive: bool = False):
    """predict.py's predictor for a checkpoint directory: a Predictor (torch) or an OnnxPredictor
    (engine/onnx_predictor.py), both with `.probabilities(texts)`, `.labels` and `.decision`."""
    runtime = inference_runtime(runtime, device, precision, interactive)
    loaded = load_checkpoint(checkpoint, device)
    if runtime == "torch":
        return Predictor(loaded, device, precision, batch_size, pack_weights, threshold)
    from engine.onnx_predictor import OnnxPredictor  # onnxruntime is imported only when it runs

    return OnnxPredictor.for_checkpoint(loaded, existing_checkpoint_dir(checkpoint), batch_size, threshold)
