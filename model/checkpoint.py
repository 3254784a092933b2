"""Self-contained classifier checkpoints: everything evaluate/predict need, nothing that runs code.

A checkpoint directory holds
  model.safetensors   classifier weights (safetensors: loading cannot execute code)
  config.json         encoder config, Hugging Face format
  classifier.json     label names in id order, pooling, max_len, whether inputs are pairs
  tokenizer files     as found in the pretrained model directory
  train_config.yaml   the resolved Hydra config of the run that produced it
"""
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from data.tokenizer import Tokenizer, load_tokenizer
from data.transform import BERTSentenceTransform
from engine.errors import UserError
from model.bert import BertConfig, BertEncoder
from model.classifier import BERTClassifier

WEIGHTS, ENCODER_CONFIG, CLASSIFIER_CONFIG, TRAIN_CONFIG = (
    "model.safetensors", "config.json", "classifier.json", "train_config.yaml")


@dataclass
class ClassifierInfo:
    labels: list[str]
    pooling: str
    max_len: int
    pair: bool = False
    dropout: float = 0.1


def save_checkpoint(directory, model: BERTClassifier, info: ClassifierInfo, tokenizer: Tokenizer,
                    train_config_yaml: str = ""):
    """Writes into a temporary sibling, then swaps it in with renames, so a crash mid-write never
    leaves a half-written checkpoint under the final name."""
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(tmp / WEIGHTS))
    (tmp / ENCODER_CONFIG).write_text(json.dumps(model.encoder.config.to_dict(), indent=2))
    (tmp / CLASSIFIER_CONFIG).write_text(json.dumps(info.__dict__, indent=2, ensure_ascii=False))
    (tmp / TRAIN_CONFIG).write_text(train_config_yaml)
    tokenizer.save(tmp)
    for f in tmp.iterdir():  # make the bytes durable before the rename publishes them
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


@dataclass
class LoadedClassifier:
    model: BERTClassifier
    transform: BERTSentenceTransform  # tokenizer + max_len exactly as in training
    info: ClassifierInfo


def load_checkpoint(directory, device="cpu") -> LoadedClassifier:
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: checkpoint directory not found")
    for name in (WEIGHTS, ENCODER_CONFIG, CLASSIFIER_CONFIG):
        if not (directory / name).is_file():
            raise UserError(f"{directory}: not a complete checkpoint, {name} is missing")
    try:
        info = ClassifierInfo(**json.loads((directory / CLASSIFIER_CONFIG).read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as e:
        raise UserError(f"{directory / CLASSIFIER_CONFIG}: unreadable ({e})") from None
    encoder = BertEncoder(BertConfig.from_json(directory / ENCODER_CONFIG))
    model = BERTClassifier(encoder, len(info.labels), info.dropout, info.pooling)
    try:
        state = load_file(str(directory / WEIGHTS))
        model.load_state_dict(state)
    except Exception as e:  # corrupt file (safetensors error) or weights of another shape (RuntimeError)
        raise UserError(f"{directory / WEIGHTS}: cannot load weights ({str(e).splitlines()[0]})") from None
    transform = BERTSentenceTransform(load_tokenizer(directory), info.max_len, pair=info.pair)
    return LoadedClassifier(model.to(device).eval(), transform, info)
