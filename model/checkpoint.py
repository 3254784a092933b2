"""Self-contained classifier checkpoints: everything evaluate/predict need, nothing that runs code.

A checkpoint directory holds
  model.safetensors   classifier weights (safetensors: loading cannot execute code)
  config.json         encoder config, Hugging Face format
  classifier.json     label names in id order, pooling, max_len, whether inputs are pairs
  tokenizer files     as found in the pretrained model directory
  train_config.yaml   the resolved Hydra config of the run that produced it
"""
import contextlib
import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.nn import init

from data.tokenizer import Tokenizer, load_tokenizer
from data.transform import BERTSentenceTransform, framing_of
from common.errors import UserError
from model.classifier import BERTClassifier
from model.encoders.families import encoder_from_config
from model.hf_classifier import is_hf_classifier, load_hf_classifier

WEIGHTS, ENCODER_CONFIG, CLASSIFIER_CONFIG, TRAIN_CONFIG = (
    "model.safetensors", "config.json", "classifier.json", "train_config.yaml")


@dataclass
class ClassifierInfo:
    labels: list[str]
    pooling: str
    max_len: int
    pair: bool = False
    dropout: float = 0.1
    text_prefix: str = ""  # data.text_prefix: part of the input the model was trained on
    multi_label: bool = False  # sigmoid per label instead of one softmax
    thresholds: list[float] | None = None  # multi-label decision thresholds (tuned on validation, or fixed)
    temperature: float = 1.0  # softmax temperature fitted on validation (trainer.calibrate); 1: uncalibrated
    loss_weights: dict | None = None  # class weights / pos_weight training used, by label (a record only)
    head: str = "linear"  # model.head: linear (pooling + dropout + Linear) | family (the encoder family's own)


def with_decision(info: ClassifierInfo, decision) -> ClassifierInfo:
    """`info` with an inference.decision.Decision's thresholds and temperature."""
    thresholds = None if decision.thresholds is None else [round(float(t), 4) for t in decision.thresholds]
    return dataclasses.replace(info, thresholds=thresholds, temperature=float(decision.temperature))


def save_checkpoint(directory, model: BERTClassifier, info: ClassifierInfo, tokenizer: Tokenizer,
                    train_config_yaml: str = "", write_extra=None):
    """Writes into a temporary sibling, then swaps it in with renames, so a crash at any moment
    leaves the previous checkpoint or the new one, never a mix (see `existing_checkpoint_dir`).
    `write_extra(tmp_dir)` adds files, e.g. the training state of a resumable checkpoint."""
    directory = Path(directory)
    old = directory.with_name(f".{directory.name}.old")
    if not directory.exists() and old.is_dir():  # a previous save died between its two renames
        os.replace(old, directory)
    shutil.rmtree(old, ignore_errors=True)
    for leftover in directory.parent.glob(f".{directory.name}.tmp-*"):  # from a writer that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    try:
        tmp.mkdir(parents=True)
        weights = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / WEIGHTS))
        (tmp / ENCODER_CONFIG).write_text(json.dumps(model.encoder.config.to_dict(), indent=2))
        (tmp / CLASSIFIER_CONFIG).write_text(json.dumps(info.__dict__, indent=2, ensure_ascii=False))
        (tmp / TRAIN_CONFIG).write_text(train_config_yaml)
        tokenizer.save(tmp)
        if write_extra is not None:
            write_extra(tmp)
        for f in tmp.iterdir():  # make the bytes durable before the rename publishes them
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    except BaseException as e:  # full disk, quota, permissions; safetensors raises its own error type for them
        shutil.rmtree(tmp, ignore_errors=True)  # also on Ctrl-C: the previous checkpoint is still whole
        if not isinstance(e, Exception):
            raise
        reason = (e.strerror if isinstance(e, OSError) and e.strerror
                  else str(e).splitlines()[0] if str(e) else type(e).__name__)
        kept = f"{directory} still holds the previous one" if directory.exists() else "nothing was saved before"
        raise UserError(f"cannot write checkpoint {directory} ({reason}); {kept}") from None
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)  # between these two renames only `.old` exists: loaders fall back to it
    shutil.rmtree(old, ignore_errors=True)


def existing_checkpoint_dir(directory) -> Path:
    """The directory itself, or its previous version if a save was killed between its renames."""
    directory = Path(directory)
    old = directory.with_name(f".{directory.name}.old")
    return old if not directory.exists() and old.is_dir() else directory


def load_weights(directory, model: torch.nn.Module):
    """Loads model.safetensors into `model`; safetensors cannot carry code, only tensors."""
    path = Path(directory) / WEIGHTS
    try:
        model.load_state_dict(load_file(str(path)))
    except Exception as e:  # corrupt file (safetensors error) or weights of another shape (RuntimeError)
        # torch lists each missing key and shape mismatch on a line of its own: all of them, on one line
        details = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise UserError(f"{path}: cannot load weights ({details})") from None


@dataclass
class LoadedClassifier:
    model: BERTClassifier
    transform: BERTSentenceTransform  # tokenizer + max_len exactly as in training
    info: ClassifierInfo


@contextlib.contextmanager
def initial_weights_not_drawn():
    """Modules built inside keep uninitialized memory instead of random initial weights, as
    Hugging Face's no_init_weights does: for weights that are loaded right after. Drawing MiniLM's
    22.7M initial values took 0.27 s of predict.py's start-up. It also leaves torch's RNG untouched."""
    names = ("kaiming_uniform_", "uniform_", "normal_", "ones_", "zeros_")  # what Linear, Embedding,
    saved = {name: getattr(init, name) for name in names}                 # LayerNorm and BERT's init call
    for name in names:
        setattr(init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(init, name, function)


def load_checkpoint(directory, device="cpu") -> LoadedClassifier:
    """One of our checkpoints, or a fine-tuned Hugging Face *ForSequenceClassification directory."""
    directory = existing_checkpoint_dir(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: checkpoint directory not found")
    if not (directory / CLASSIFIER_CONFIG).exists() and is_hf_classifier(directory):
        return load_hf_checkpoint(directory, device)
    for name in (WEIGHTS, ENCODER_CONFIG, CLASSIFIER_CONFIG):
        if not (directory / name).is_file():
            raise UserError(f"{directory}: not a complete checkpoint, {name} is missing")
    try:
        info = ClassifierInfo(**json.loads((directory / CLASSIFIER_CONFIG).read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as e:
        raise UserError(f"{directory / CLASSIFIER_CONFIG}: unreadable ({e})") from None
    with initial_weights_not_drawn():  # all of them are loaded next
        encoder = encoder_from_config(directory / ENCODER_CONFIG)
        model = BERTClassifier(encoder, len(info.labels), info.dropout, info.pooling, info.head)
    load_weights(directory, model)
    tokenizer = load_tokenizer(directory)
    transform = BERTSentenceTransform(tokenizer, info.max_len, pair=info.pair, text_prefix=info.text_prefix,
                                      framing=framing_of(encoder.config.model_type, tokenizer))
    return LoadedClassifier(model.to(device).eval(), transform, info)


def load_hf_checkpoint(directory: Path, device) -> LoadedClassifier:
    """A fine-tuned Hugging Face classifier, as evaluate.py and predict.py use it: labels from id2label,
    the family's own head, texts framed and truncated as its tokenizer would."""
    with initial_weights_not_drawn():
        model, labels, multi_label, max_len, family = load_hf_classifier(directory)
    info = ClassifierInfo(labels, model.pooling, max_len, dropout=model.dropout.p, multi_label=multi_label,
                          head="family")
    tokenizer = load_tokenizer(directory)
    transform = BERTSentenceTransform(tokenizer, max_len, framing=framing_of(model.encoder.config.model_type, tokenizer))
    return LoadedClassifier(model.to(device).eval(), transform, info)
