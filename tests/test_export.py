"""model.export: exported checkpoints give our logits in transformers, its pipeline and ONNX Runtime,
and train.py fine-tunes from an exported directory."""
import contextlib
import json
import os

import numpy as np
import pytest
import torch

from data.dataset import ClassificationDataset
from data.tokenizer import load_tokenizer
from inference.predictor import Predictor
from inference.batches import eval_loader, predict_logits
from model.encoders.bert import BertEncoder
from model.checkpoint import ClassifierInfo, load_checkpoint, save_checkpoint
from model.classifier import BERTClassifier
from tests.conftest import run_script, tiny_config, write_hf_bert

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # exported directories must load without a network
transformers = pytest.importorskip("transformers", reason="transformers is a test-only dependency")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is a test-only dependency")

TOLERANCE = 1e-4
# Different lengths (padding in every batch), unknown characters, and a text longer than max_len.
TEXTS = ["i feel so happy", "really furious today and the day was very mad", "scared",
         "Héllo ÜNKNOWN wörds 😀 afraid", "i was happy and great " * 30, "the new bus line is great"]
TEXTS_B = ["so happy", "terrified", "the day was very very long and it is mad", "i", "great", "afraid " * 40]


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def export(checkpoint, fmt, out):
    result = run_script("-m", "model.export", f"checkpoint={checkpoint}", f"format={fmt}", f"out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def random_head_checkpoint(directory, encoder_dir, labels, pooling="pooler", pair=False, seed=0):
    """A checkpoint of a pretrained encoder with an untrained head (large weights: logits far from 0)."""
    torch.manual_seed(seed)
    model = BERTClassifier(BertEncoder.from_pretrained(encoder_dir), len(labels), pooling=pooling)
    torch.nn.init.normal_(model.head.weight, std=0.5)
    torch.nn.init.normal_(model.head.bias, std=0.5)
    save_checkpoint(directory, model, ClassifierInfo(labels, pooling, 32, pair), load_tokenizer(encoder_dir))
    return directory


@pytest.fixture(scope="module")
def trained_tiny(tiny_model_dir, tiny_data, tmp_path_factory):
    """A tiny BERT fine-tuned by train.py for a few steps."""
    run_dir = tmp_path_factory.mktemp("export_run")
    result = run_script(
        "train.py", f"model.path={tiny_model_dir}", "data=files", f"data.train={tiny_data['train']}",
        f"data.validation={tiny_data['validation']}", f"data.test={tiny_data['test']}", "trainer.max_steps=10",
        "trainer.batch_size=16", "optim.lr=3e-3", "trainer.precision=fp32", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir / "checkpoints" / "best"


@pytest.fixture(scope="module")
def tiny_pair(tiny_model_dir, tmp_path_factory):
    return random_head_checkpoint(tmp_path_factory.mktemp("pair") / "ckpt", tiny_model_dir, ["no", "yes"], pair=True)


@pytest.fixture(scope="module")
def default_encoder(default_model_dir, tmp_path_factory):
    return random_head_checkpoint(tmp_path_factory.mktemp("default") / "ckpt", default_model_dir,
                                  ["negative", "neutral", "positive"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """exported(checkpoint, format) -> directory, exported once per module (ONNX export of MiniLM takes seconds)."""
    directories = {}

    def get(checkpoint, fmt):
        if (checkpoint, fmt) not in directories:
            directories[checkpoint, fmt] = tmp_path_factory.mktemp(fmt) / "out"
            export(checkpoint, fmt, directories[checkpoint, fmt])
        return directories[checkpoint, fmt]
    return get


def our_logits(loaded, texts=TEXTS, texts_b=None):
    """Logits the way evaluate.py computes them: length-sorted batches, each padded to its longest."""
    dataset = ClassificationDataset(texts, None, loaded.transform, texts_b)
    return predict_logits(loaded.model, eval_loader(dataset, batch_size=4), "cpu", contextlib.nullcontext())


def padded_batch(loaded, texts=TEXTS, texts_b=None) -> dict:
    """One batch of all the texts, padded to the longest, as Hugging Face-style numpy inputs."""
    batch = ClassificationDataset(texts, None, loaded.transform, texts_b).collate(np.arange(len(texts)))
    mask = torch.arange(batch.token_ids.shape[1])[None] < batch.valid_length[:, None]
    return {"input_ids": batch.token_ids.numpy(), "attention_mask": mask.long().numpy(),
            "token_type_ids": batch.segment_ids.numpy()}


CHECKPOINTS = ["trained_tiny", "tiny_pair", "default_encoder"]


def load_and_export(checkpoint, exported, fmt):
    """The checkpoint as our code loads it, the second texts if it classifies pairs, and its export."""
    loaded = load_checkpoint(checkpoint)
    return loaded, TEXTS_B if loaded.info.pair else None, exported(checkpoint, fmt)


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_transformers_and_pipeline_give_our_logits_and_labels(name, request, exported):
    loaded, texts_b, out = load_and_export(request.getfixturevalue(name), exported, "hf")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and config["model_type"] == "bert"
    assert [config["id2label"][str(i)] for i in range(len(loaded.info.labels))] == loaded.info.labels
    assert config["label2id"] == {name: i for i, name in enumerate(loaded.info.labels)}

    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    model, loading = transformers.AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert not loading["missing_keys"] and not loading["unexpected_keys"] and not loading["mismatched_keys"]
    inputs = tokenizer(TEXTS, texts_b, padding=True, truncation=True, return_tensors="pt")
    assert (inputs["attention_mask"] == 0).any()  # the batch really is padded
    np.testing.assert_array_equal(inputs["input_ids"].numpy(), padded_batch(loaded, TEXTS, texts_b)["input_ids"])
    with torch.no_grad():
        theirs = model.eval()(**inputs).logits.numpy()
    ours = our_logits(loaded, TEXTS, texts_b)
    assert np.abs(theirs - ours).max() < TOLERANCE

    classify = transformers.pipeline("text-classification", model=str(out), device="cpu")
    pipeline_inputs = TEXTS if texts_b is None else [{"text": a, "text_pair": b} for a, b in zip(TEXTS, texts_b)]
    results = classify(pipeline_inputs, top_k=None, truncation=True)
    probs = Predictor(loaded, "cpu", "fp32").probabilities(TEXTS, texts_b)
    for scores, our_probs in zip(results, probs):
        assert sorted(s["label"] for s in scores) == sorted(loaded.info.labels)
        for s in scores:
            assert abs(s["score"] - our_probs[loaded.info.labels.index(s["label"])]) < TOLERANCE
        assert scores[0]["label"] == loaded.info.labels[int(our_probs.argmax())]


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_onnx_runtime_gives_our_logits_for_any_batch_and_length(name, request, exported):
    loaded, texts_b, out = load_and_export(request.getfixturevalue(name), exported, "onnx")
    assert json.loads((out / "labels.json").read_text()) == loaded.info.labels
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    ours = our_logits(loaded, TEXTS, texts_b)
    batch = padded_batch(loaded, TEXTS, texts_b)
    assert np.abs(session.run(None, batch)[0] - ours).max() < TOLERANCE
    # Dynamic axes: another batch size and padded length than the first call (and than the export's example).
    few, few_b = TEXTS[:3:2], texts_b and texts_b[:3:2]
    few_logits = session.run(None, padded_batch(loaded, few, few_b))[0]
    assert few_logits.shape == (2, len(loaded.info.labels))
    assert np.abs(few_logits - our_logits(loaded, few, few_b)).max() < TOLERANCE
    # The tokenizer files beside the graph feed it directly.
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    inputs = tokenizer(TEXTS, texts_b, padding=True, truncation=True, return_tensors="np")
    assert np.abs(session.run(None, {k: inputs[k] for k in batch})[0] - ours).max() < TOLERANCE


def test_tokenizer_json_alone_reproduces_our_inputs(default_encoder, exported):
    """ONNX Runtime users need only `tokenizers`: truncation at max_len, padding, [CLS]/[SEP] are in the file."""
    from tokenizers import Tokenizer

    loaded = load_checkpoint(default_encoder)
    encodings = Tokenizer.from_file(str(exported(default_encoder, "onnx") / "tokenizer.json")).encode_batch(TEXTS)
    batch = padded_batch(loaded)
    np.testing.assert_array_equal([e.ids for e in encodings], batch["input_ids"])
    np.testing.assert_array_equal([e.attention_mask for e in encodings], batch["attention_mask"])


def test_mean_pooling_exports_to_onnx_exactly(tiny_model_dir, tmp_path):
    checkpoint = random_head_checkpoint(tmp_path / "ckpt", tiny_model_dir, ["a", "b", "c"], pooling="mean")
    export(checkpoint, "onnx", tmp_path / "onnx")
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    loaded = load_checkpoint(checkpoint)
    assert np.abs(session.run(None, padded_batch(loaded))[0] - our_logits(loaded)).max() < TOLERANCE


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_cls_and_mean_pooling_refuse_hf_export_in_one_line(pooling, tiny_model_dir, tmp_path):
    checkpoint = random_head_checkpoint(tmp_path / "ckpt", tiny_model_dir, ["a", "b"], pooling=pooling)
    result = run_script("-m", "model.export", f"checkpoint={checkpoint}", "format=hf", f"out={tmp_path / 'hf'}")
    line = one_line_error(result)
    assert f"pooling='{pooling}' cannot be exported as format=hf" in line and "pooling=pooler" in line
    assert not (tmp_path / "hf").exists()  # nothing half-written


@pytest.mark.parametrize("args, expected", [
    (["checkpoint={tmp}/ckpt", "format=tflite", "out={tmp}/out"], "format='tflite' is not one of hf, onnx"),
    (["checkpoint={tmp}/ckpt", "formt=hf", "out={tmp}/out"], "Could not override 'formt'"),
    (["out={tmp}/out"], "checkpoint has no value"),
    (["checkpoint={tmp}/ckpt"], "out has no value"),
    (["checkpoint={tmp}/ckpt", "out={tmp}/out"], "checkpoint directory not found"),
])
def test_export_mistakes_are_one_line(args, expected, tmp_path):
    args = [a.format(tmp=tmp_path) for a in args]
    assert expected in one_line_error(run_script("-m", "model.export", *args))


def test_export_refuses_a_non_empty_out_directory(trained_tiny, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = run_script("-m", "model.export", f"checkpoint={trained_tiny}", f"out={tmp_path}")
    assert "is not empty" in one_line_error(result) and (tmp_path / "keep.txt").read_text() == "mine"


def test_train_continues_from_an_exported_directory(trained_tiny, tiny_data, exported, tmp_path):
    out = exported(trained_tiny, "hf")
    # The fine-tuned encoder and tokenizer come back unchanged (the classifier head is task-specific).
    encoder = BertEncoder.from_pretrained(out)
    for key, value in load_checkpoint(trained_tiny).model.encoder.state_dict().items():
        assert torch.equal(encoder.state_dict()[key], value), key
    assert load_tokenizer(out).encode_batch(TEXTS) == load_tokenizer(trained_tiny).encode_batch(TEXTS)
    result = run_script("train.py", f"model.path={out}", "data=files", f"data.train={tiny_data['train']}",
                        f"data.validation={tiny_data['validation']}", f"data.test={tiny_data['test']}",
                        "trainer.max_steps=3", "trainer.batch_size=16", "trainer.precision=fp32",
                        f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 3


def test_sentencepiece_checkpoint_exports_weights_and_says_how_to_tokenize(tmp_path):
    from tests.test_tokenizer import KOREAN, train_sentencepiece

    encoder_dir = tmp_path / "kobert"
    encoder_dir.mkdir()
    train_sentencepiece(encoder_dir, KOREAN)
    tokens = load_tokenizer(encoder_dir).vocab_size
    write_hf_bert(encoder_dir, tiny_config(tokens), ["unused"])
    (encoder_dir / "vocab.txt").unlink()  # skt/kobert-base-v1 layout: SentencePiece ids are the rows
    checkpoint = random_head_checkpoint(tmp_path / "ckpt", encoder_dir, ["a", "b", "c"])
    result = export(checkpoint, "hf", tmp_path / "hf")
    assert "note: the SentencePiece tokenizer files are copied" in result.stdout
    assert (tmp_path / "hf" / "spiece.model").read_bytes() == (encoder_dir / "spiece.model").read_bytes()
    with pytest.raises(ValueError):  # rather than a BertTokenizer with an empty vocabulary: all [UNK]
        transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    loaded = load_checkpoint(checkpoint)
    model = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    inputs = {k: torch.from_numpy(v) for k, v in padded_batch(loaded).items()}
    with torch.no_grad():
        theirs = model(**inputs).logits.numpy()
    assert np.abs(theirs - our_logits(loaded)).max() < TOLERANCE
