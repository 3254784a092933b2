"""predict.py's ONNX Runtime path (runtime=onnx; auto at the prompt, fp32 on CPU): the checkpoint
exported once with model/export.py, fused by onnxruntime's transformer optimizer, cached by content,
and run with the same tokenization, batching and decision as inference.predictor.Predictor.

The graph lives in .cache/onnx/<key>/model.onnx, where the key hashes the checkpoint's weights and
configs and the versions that shaped the graph: a retrained or recalibrated checkpoint, or another
torch or onnxruntime, gets a fresh export instead of a stale graph. Exporting MiniLM takes seconds,
once (figures: BENCHMARKS.md → Inference); delete .cache/onnx to reclaim the space.
"""
import contextlib
import hashlib
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from common.paths import PROJECT_ROOT
from data.dataset import ClassificationDataset
from inference.batches import in_dataset_order, text_batches
from inference.decision import decision_of
from model.checkpoint import CLASSIFIER_CONFIG, ENCODER_CONFIG, WEIGHTS

# ONNX_GRAPH_CACHE moves it (the tests point it at a temporary directory).
GRAPH_CACHE = Path(os.environ.get("ONNX_GRAPH_CACHE", PROJECT_ROOT / ".cache" / "onnx"))
GRAPH_FILE = "model.onnx"
# Bump when the export or the fusions below change what a cached graph holds.
GRAPH_FORMAT = "export opset 18 + bert fusions, v2"  # v2: the last layer computes [CLS] only (first_token_only)
OPSET = 18  # model/export.py's default. Opset 23's Attention op: ORT 1.31's CPU kernel refuses our (B,1,1,T) mask


def graph_key(checkpoint: Path) -> str:
    """sha256 over everything the exported graph is made of (0.05 s for MiniLM's 91 MB)."""
    digest = hashlib.sha256(f"{GRAPH_FORMAT}; torch {torch.__version__}; onnxruntime {ort.__version__}".encode())
    # classifier.json: labels, pooling, temperature. A Hugging Face classifier directory has none (its
    # config.json holds the labels) and may hold pytorch_model.bin instead of safetensors.
    for name in (WEIGHTS, "pytorch_model.bin", ENCODER_CONFIG, CLASSIFIER_CONFIG):
        if not (checkpoint / name).exists():
            continue
        with open(checkpoint / name, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()[:32]


def cached_graph(loaded, checkpoint: Path, cache: Path = GRAPH_CACHE) -> Path:
    """The fused ONNX graph of this checkpoint, exported now if the cache has none for its current content.
    Exporting divides `loaded`'s head by the temperature (model/export.py): use `loaded` for nothing else."""
    path = cache / graph_key(checkpoint) / GRAPH_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Exported beside its final place, then renamed: a concurrent predict.py reads a whole graph or none.
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as tmp:
            fused = export_fused(loaded, checkpoint, Path(tmp))
            os.replace(fused, path)
    return path


def export_fused(loaded, checkpoint: Path, out: Path) -> Path:
    from model.export import export_onnx  # the exporter (onnx, onnxscript) is needed only on a cache miss
    from onnxruntime.transformers.optimizer import optimize_model

    export_onnx(loaded, checkpoint, out, OPSET)
    cfg = loaded.model.encoder.config
    # The optimizer prints and logs its shape-inference misses (harmless here: the fusions apply); stdout
    # is predict.py's JSON lines, so both are kept out of it.
    fusion_log = logging.getLogger("onnxruntime.transformers")
    level = fusion_log.level
    fusion_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            # opt_level=0: the Python fusions only (SkipLayerNormalization, BiasGelu on this graph); the
            # session applies onnxruntime's own, machine-specific optimisations at load.
            fused = optimize_model(str(out / GRAPH_FILE), model_type="bert", num_heads=cfg.num_attention_heads,
                                   hidden_size=cfg.hidden_size, opt_level=0)
    finally:
        fusion_log.setLevel(level)
    fused.save_model_to_file(str(out / "fused.onnx"))
    return out / "fused.onnx"


def onnx_session(graph: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one chain of operators: a second pool would only compete for the cores
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def graph_inputs(batch, names) -> dict:
    """A collated Batch as the exported graph's Hugging Face-named inputs (model/export.py); token_type_ids
    only for the families whose graph takes them."""
    mask = np.arange(batch.token_ids.shape[1])[None, :] < batch.valid_length.numpy()[:, None]
    inputs = {"input_ids": batch.token_ids.numpy(), "attention_mask": mask.astype(np.int64),
              "token_type_ids": batch.segment_ids.numpy()}
    return {name: inputs[name] for name in names}


class OnnxPredictor:
    """inference.predictor.Predictor's interface (`probabilities`, `labels`, `decision`) over an ONNX Runtime
    session: our tokenizer and batches in, the checkpoint's own decision on the logits out."""

    def __init__(self, loaded, graph: Path, batch_size: int = 64, threshold: float | None = None,
                 threads: int | None = None):
        self.transform, self.labels, self.batch_size = loaded.transform, loaded.info.labels, batch_size
        self.decision = decision_of(loaded.info).with_threshold(threshold)
        # The export folds 1/temperature into the head: multiplying back gives the logits Predictor sees,
        # so the same decision (softmax of logits / T, or sigmoids) applies unchanged.
        self.temperature = float(loaded.info.temperature)
        self.graph, self.session = graph, onnx_session(graph, threads or torch.get_num_threads())
        self.input_names = [i.name for i in self.session.get_inputs()]

    @classmethod
    def for_checkpoint(cls, loaded, checkpoint: Path, batch_size: int = 64, threshold: float | None = None,
                       cache: Path = GRAPH_CACHE) -> "OnnxPredictor":
        return cls(loaded, cached_graph(loaded, Path(checkpoint), cache), batch_size, threshold)

    def probabilities(self, texts: list[str], texts_b=None) -> np.ndarray:
        chunks, order = [], []
        for batch in text_batches(ClassificationDataset(texts, None, self.transform, texts_b), self.batch_size):
            chunks.append(torch.from_numpy(self.session.run(None, graph_inputs(batch, self.input_names))[0]))
            order.append(batch.indices)
        return self.decision.probabilities(in_dataset_order(chunks, torch.cat(order)) * self.temperature)


def clear_cached_graph(checkpoint: Path, cache: Path = GRAPH_CACHE):
    """Removes this checkpoint's cached graph (benchmarks: a cold start)."""
    shutil.rmtree(cache / graph_key(Path(checkpoint)), ignore_errors=True)
