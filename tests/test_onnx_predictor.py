"""inference/onnx_predictor.py: ONNX Runtime gives predict.py the probabilities and labels torch gives (single-label
with a temperature, multi-label with thresholds, pairs), its cached graph follows the checkpoint's content,
and predict.py picks the runtime as documented."""
import json
import shutil

import numpy as np
import pytest
import torch

from common.errors import UserError
from data.tokenizer import load_tokenizer
from inference.predictor import Predictor, inference_runtime
from model.encoders.bert import BertEncoder
from model.checkpoint import CLASSIFIER_CONFIG, ClassifierInfo, load_checkpoint, save_checkpoint
from model.classifier import BERTClassifier
from tests.conftest import run_script

pytest.importorskip("onnxruntime", reason="runtime=onnx needs onnxruntime")
pytest.importorskip("onnxscript", reason="the ONNX export needs onnxscript")
from inference import onnx_predictor  # noqa: E402
from inference.onnx_predictor import OnnxPredictor, graph_key  # noqa: E402

TOLERANCE = 1e-4
# Padding in every batch, an unknown character, a text longer than max_len; 3 x 7 texts: three batches of 8.
TEXTS = ["i feel so happy", "really furious today and the day was very mad", "scared", "Héllo wörds 😀 afraid",
         "i was happy and great " * 30, "the new bus line is great", "mad"] * 3
TEXTS_B = ["so happy", "terrified", "the day was very long and it is mad", "i", "great", "afraid " * 40, "ok"] * 3


def tiny_checkpoint(directory, encoder_dir, seed=0, **info):
    """A tiny random BERT with a large random head (logits far apart, so a temperature matters)."""
    info = {"labels": ["joy", "anger", "fear"], "pooling": "pooler", "max_len": 32, **info}
    torch.manual_seed(seed)
    model = BERTClassifier(BertEncoder.from_pretrained(encoder_dir), len(info["labels"]), pooling=info["pooling"])
    torch.nn.init.normal_(model.head.weight, std=2.0)
    save_checkpoint(directory, model, ClassifierInfo(**info), load_tokenizer(encoder_dir))
    return directory


def both_predictors(checkpoint, cache, **kwargs):
    torch_predictor = Predictor(load_checkpoint(checkpoint), "cpu", "fp32", 8, pack_weights=False, **kwargs)
    return torch_predictor, OnnxPredictor.for_checkpoint(load_checkpoint(checkpoint), checkpoint, 8, cache=cache,
                                                         **kwargs)


@pytest.mark.parametrize("info", [
    {"temperature": 2.5},  # folded into the exported head by model/export.py
    {"pooling": "mean", "temperature": 0.4},
    {"pair": True},
], ids=["temperature", "mean-pooling", "pairs"])
def test_onnx_gives_the_torch_probabilities_and_labels(info, tiny_model_dir, tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "ckpt", tiny_model_dir, **info)
    ours, onnx = both_predictors(checkpoint, tmp_path / "cache")
    texts_b = TEXTS_B if info.get("pair") else None
    expected, got = ours.probabilities(TEXTS, texts_b), onnx.probabilities(TEXTS, texts_b)
    assert np.abs(got - expected).max() < TOLERANCE
    np.testing.assert_array_equal(onnx.decision.predict(got), ours.decision.predict(expected))
    assert onnx.labels == ours.labels and onnx.decision == ours.decision
    one = onnx.probabilities(TEXTS[1:2], texts_b and texts_b[1:2])  # a prompt's line: one batch, no sorting
    assert np.abs(one - expected[1:2]).max() < TOLERANCE
    if "temperature" in info:  # the probabilities really are softened or sharpened, not softmax(raw logits)
        untempered = Predictor(load_checkpoint(checkpoint), "cpu", "fp32", 8, pack_weights=False)
        untempered.decision.temperature = 1.0
        assert np.abs(untempered.probabilities(TEXTS) - got).max() > 0.01


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_multi_label_onnx_gives_the_torch_sigmoids_and_label_sets(temperature, tiny_model_dir, tmp_path):
    # Multi-label decisions ignore the temperature; the export folds it all the same, so it is undone.
    checkpoint = tiny_checkpoint(tmp_path / "ckpt", tiny_model_dir, multi_label=True, thresholds=[0.3, 0.5, 0.7],
                                 temperature=temperature)
    for threshold in (None, 0.4):
        ours, onnx = both_predictors(checkpoint, tmp_path / "cache", threshold=threshold)
        expected, got = ours.probabilities(TEXTS), onnx.probabilities(TEXTS)
        assert np.abs(got - expected).max() < TOLERANCE
        assert onnx.decision.multi_label
        np.testing.assert_array_equal(onnx.decision.predict(got), ours.decision.predict(expected))


def test_a_changed_checkpoint_never_reads_a_stale_graph(tiny_model_dir, tmp_path, monkeypatch):
    checkpoint, cache = tiny_checkpoint(tmp_path / "ckpt", tiny_model_dir), tmp_path / "cache"
    first = OnnxPredictor.for_checkpoint(load_checkpoint(checkpoint), checkpoint, cache=cache)
    before = first.probabilities(TEXTS)

    exports = []
    export_fused = onnx_predictor.export_fused
    monkeypatch.setattr(onnx_predictor, "export_fused", lambda *args: exports.append(args) or export_fused(*args))
    again = OnnxPredictor.for_checkpoint(load_checkpoint(checkpoint), checkpoint, cache=cache)
    assert not exports and again.graph == first.graph  # the same content: read from the cache

    tiny_checkpoint(checkpoint, tiny_model_dir, seed=1)  # retrained in place: other weights, same path
    retrained = OnnxPredictor.for_checkpoint(load_checkpoint(checkpoint), checkpoint, cache=cache)
    assert len(exports) == 1 and retrained.graph != first.graph
    expected = Predictor(load_checkpoint(checkpoint), "cpu", "fp32", pack_weights=False).probabilities(TEXTS)
    assert np.abs(retrained.probabilities(TEXTS) - expected).max() < TOLERANCE
    assert np.abs(before - expected).max() > 0.01

    info = json.loads((checkpoint / CLASSIFIER_CONFIG).read_text())
    (checkpoint / CLASSIFIER_CONFIG).write_text(json.dumps({**info, "temperature": 2.0}))  # recalibrated
    key = graph_key(checkpoint)
    assert key != retrained.graph.parent.name
    recalibrated = OnnxPredictor.for_checkpoint(load_checkpoint(checkpoint), checkpoint, cache=cache)
    assert len(exports) == 2 and recalibrated.graph.parent.name == key
    expected = Predictor(load_checkpoint(checkpoint), "cpu", "fp32", pack_weights=False).probabilities(TEXTS)
    assert np.abs(recalibrated.probabilities(TEXTS) - expected).max() < TOLERANCE


def test_auto_is_onnx_at_the_prompt_in_fp32_on_cpu_and_torch_otherwise():
    assert inference_runtime("auto", "cpu", "fp32", interactive=True) == "onnx"
    assert inference_runtime("auto", "cpu", "fp32", interactive=False) == "torch"  # text= and piped: batches
    assert inference_runtime("auto", "cpu", "bf16", interactive=True) == "torch"
    assert inference_runtime("auto", "cuda", "fp32", interactive=True) == "torch"
    assert inference_runtime("onnx", "cpu", "fp32") == "onnx" and inference_runtime("torch", "cpu", "fp32") == "torch"
    with pytest.raises(UserError, match="runtime=onnx runs fp32 only"):
        inference_runtime("onnx", "cpu", "bf16")
    with pytest.raises(UserError, match="runtime=onnx runs on the CPU"):
        inference_runtime("onnx", "cuda", "fp32")


def test_auto_falls_back_to_torch_without_onnxruntime(monkeypatch, capsys):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxscript" else find_spec(name, *a))
    assert inference_runtime("auto", "cpu", "fp32", interactive=True) == "torch"
    assert "runtime=auto uses torch: onnxscript not installed" in capsys.readouterr().err
    with pytest.raises(UserError, match="runtime=onnx needs onnxscript: pip install -r requirements-dev.txt"):
        inference_runtime("onnx", "cpu", "fp32")


def test_predict_py_answers_the_same_with_either_runtime(tiny_model_dir, tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "ckpt", tiny_model_dir, temperature=1.7)
    lines = "".join(text + "\n" for text in TEXTS[:7])
    records = {}
    for runtime in ("torch", "onnx", "auto"):
        result = run_script("predict.py", f"checkpoint={checkpoint}", f"runtime={runtime}", input=lines)
        assert result.returncode == 0 and not result.stderr, result.stderr[-2000:]
        records[runtime] = [json.loads(line) for line in result.stdout.splitlines()]
    assert records["auto"] == records["torch"]  # piped input: torch, exactly
    assert [r["label"] for r in records["onnx"]] == [r["label"] for r in records["torch"]]
    for mine, other in zip(records["torch"], records["onnx"]):
        assert other["probs"] == pytest.approx(mine["probs"], abs=TOLERANCE)


def test_the_prompt_runs_onnx_with_runtime_auto_and_caches_the_graph(tiny_model_dir, tmp_path):
    import sys

    import pexpect

    from common.config import PROJECT_ROOT

    checkpoint = tiny_checkpoint(tmp_path / "ckpt", tiny_model_dir, seed=7)
    graph = onnx_predictor.GRAPH_CACHE / graph_key(checkpoint) / onnx_predictor.GRAPH_FILE
    expected = Predictor(load_checkpoint(checkpoint), "cpu", "fp32", pack_weights=False).probabilities(["so mad"])[0]
    child = pexpect.spawn(sys.executable, ["predict.py", f"checkpoint={checkpoint}", "runtime=auto"],
                          cwd=str(PROJECT_ROOT),
                          encoding="utf-8", timeout=120)
    child.expect("> ")
    assert graph.is_file()  # exported before the first prompt
    child.sendline("so mad")
    best = ["joy", "anger", "fear"][int(expected.argmax())]
    child.expect(rf"{best}\s+\(\d+\.\d%\)")  # the label torch gives
    child.sendline("quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    shutil.rmtree(graph.parent)


@pytest.mark.parametrize("args, expected", [
    (["runtime=tflite"], "runtime='tflite' is not one of auto, torch, onnx"),
    (["runtime=onnx", "precision=bf16"], "runtime=onnx runs fp32 only (precision=bf16)"),
])
def test_runtime_mistakes_are_one_line(args, expected, tiny_model_dir, tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "ckpt", tiny_model_dir)
    result = run_script("predict.py", f"checkpoint={checkpoint}", *args, "text=hi")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr
