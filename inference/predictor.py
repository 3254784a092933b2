"""A checkpoint as a text classifier: texts in, class probabilities out, with torch (Predictor) or
ONNX Runtime (inference/onnx_predictor.py), and the choice between them for predict.py."""
import importlib.util
import sys

import numpy as np
import torch

from common.errors import UserError
from data.dataset import ClassificationDataset
from inference.batches import predict_logits, prepare_for_inference, text_batches
from inference.decision import decision_of
from model.checkpoint import existing_checkpoint_dir, load_checkpoint
from model.families import family_of_encoder


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
    (inference/onnx_predictor.py), both with `.probabilities(texts)`, `.labels` and `.decision`."""
    requested, runtime = runtime, inference_runtime(runtime, device, precision, interactive)
    loaded = load_checkpoint(checkpoint, device)
    if requested == "auto" and not family_of_encoder(loaded.model.encoder).onnx:
        runtime = "torch"  # a family without an ONNX export (DeBERTa-v2): runtime=onnx alone refuses it
    if runtime == "torch":
        return Predictor(loaded, device, precision, batch_size, pack_weights, threshold)
    from inference.onnx_predictor import OnnxPredictor  # onnxruntime is imported only when it runs

    return OnnxPredictor.for_checkpoint(loaded, existing_checkpoint_dir(checkpoint), batch_size, threshold)
