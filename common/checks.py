"""Ranges and relations between config values, checked first by each entry script, before any data
is read or any model is built: a mistake costs seconds, not a tokenized corpus, and reads as one line.

Types and choices are already enforced by the schema when Hydra composes (common/schema.py); here is
what a type cannot say. Each entry script calls its one function: check_train (train.py),
check_evaluate, check_predict, check_report (data.report), check_export (model.export).
"""
import json
import math
import re
from pathlib import Path

from omegaconf import OmegaConf

from common.errors import UserError
from common.model_types import ROBERTA_FAMILY

DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
SEED_RANGE = 2 ** 32  # numpy's seeds are 32-bit


def require(ok: bool, key: str, value, rule: str):
    if not ok:
        raise UserError(f"{key}={value} {rule}")


def at_least(section, names, minimum: int, prefix: str):
    for name in names:
        value = section[name]
        if value is not None:  # null: the key's documented "not set"
            require(value >= minimum, f"{prefix}{name}", value, f"must be at least {minimum}")


def check_train(cfg, processes: int = 1):
    """`processes`: how many training processes this launch has (torchrun/srun), for the batch split."""
    require(0 <= cfg.seed < SEED_RANGE, "seed", cfg.seed, f"must be in [0, {SEED_RANGE})")
    check_model(cfg.model)
    check_data(cfg.data)
    check_optimization(cfg.optim, cfg.scheduler)
    check_loss(cfg.loss)
    check_trainer(cfg.trainer, processes)
    check_max_len(cfg.data, resolved(cfg, "model.path"))  # last: resolving it may build an encoder directory
    check_trim_vocab(cfg.model, resolved(cfg, "model.path"))


def check_evaluate(cfg):
    at_least(cfg, ("top_losses", "projector_max_examples", "batch_size", "threads"), 1, "")
    check_threshold(cfg.threshold, "threshold")
    check_device(cfg.device, "device")
    if cfg.data is not None:
        check_data(cfg.data, train_required=False)


def check_predict(cfg):
    at_least(cfg, ("batch_size", "threads"), 1, "")
    check_threshold(cfg.threshold, "threshold")
    check_device(cfg.device, "device")


def check_report(cfg):
    check_data(cfg.data)
    check_max_len(cfg.data, resolved(cfg, "model.path"))


def check_export(cfg):
    require(cfg.opset >= 7, "opset", cfg.opset, "must be at least 7 (ONNX Runtime reads 7 and later)")


def check_model(model):
    require(0 <= model.dropout < 1, "model.dropout", model.dropout, "must be in [0, 1)")


def check_data(data, train_required: bool = True):
    if train_required and not resolved(data, "train"):
        raise UserError("data.train is not set (path of the training file)")
    require(data.split_seed >= 0, "data.split_seed", data.split_seed, "must be at least 0")
    check_encoding(data.encoding)
    check_folds(data)
    check_exclude(data)
    require(data.format != "txt" or data.delimiter != "", "data.delimiter", "''", "must be set for data.format=txt")
    if data.labels is not None:
        repeated = sorted({name for name in data.labels if list(data.labels).count(name) > 1})
        require(not repeated, "data.labels", list(data.labels), f"names {repeated[0] if repeated else ''!r} twice")
    carved = [name for name in ("validation", "test") if not resolved(data, name)]
    if carved:  # split fractions only matter for the splits carved out of data.train
        fractions = {name: data.split[name] for name in ("train", "validation", "test")}
        for name, value in fractions.items():
            require(0 <= value <= 1, f"data.split.{name}", value, "must be in [0, 1]")
        for name in ("train", *carved):
            require(fractions[name] > 0, f"data.split.{name}", fractions[name],
                    f"must be above 0: the {name} split is carved out of data.train")
        total = sum(fractions.values())
        require(math.isclose(total, 1, abs_tol=1e-6), "data.split", dict(fractions), f"sums to {total:g}, not 1")


def check_encoding(encoding: str):
    try:
        b"a".decode(encoding)  # LookupError for unknown names and for bytes-to-bytes codecs (base64, rot13)
    except UnicodeDecodeError:  # a text codec in which one byte 'a' is incomplete (utf-16)
        pass
    except LookupError:
        raise UserError(f"data.encoding={encoding!r} is not a text encoding Python knows "
                        "(e.g. utf-8, cp949, euc-kr, utf-16)") from None


def check_folds(data):
    folds, fold = data.get("folds"), data.get("fold")  # .get: data configs stored before folds existed
    if folds is None:
        require(fold is None, "data.fold", fold, "needs data.folds (the number of folds), e.g. data.folds=5")
        return
    require(folds >= 2, "data.folds", folds, "must be at least 2")
    require(fold is not None, "data.fold", fold,
            f"must be set with data.folds={folds}: which fold validates (0..{folds - 1})")
    require(0 <= fold < folds, "data.fold", fold, f"must be in [0, {folds}) with data.folds={folds}")


def check_exclude(data):
    """The file's columns and labels need the data read (data/exclude.py); here what the config alone says."""
    path = data.get("exclude")  # .get: data configs stored before data.exclude existed
    if not path:
        return
    if not Path(path).is_file():
        raise UserError(f"data.exclude={path}: file not found")
    if data.text_b_column:
        raise UserError(f"data.exclude={path}: not for sentence-pair data (data.text_b_column={data.text_b_column}): "
                        "the audit's text column joins the pair, so it matches no single text exactly")


def check_max_len(data, model_path):
    """max_len leaves room for text between [CLS] and [SEP] (and the pair's second [SEP]) and fits the
    encoder's position table (its config.json): a longer sequence would index past it mid-training."""
    minimum = 4 if data.text_b_column else 3
    require(data.max_len >= minimum, "data.max_len", data.max_len,
            f"must be at least {minimum}: [CLS], [SEP]{', [SEP]' if minimum == 4 else ''} and one token of text")
    positions = encoder_positions(model_path)
    require(data.max_len <= positions, "data.max_len", data.max_len,
            f"exceeds the {positions} positions of the encoder ({Path(model_path) / 'config.json'})")


def encoder_positions(model_path) -> int:
    config = Path(model_path) / "config.json"
    if not config.is_file():
        raise UserError(f"model.path={model_path}: no encoder there ({config.name} not found)")
    try:
        values = json.loads(config.read_text(encoding="utf-8"))
        positions = int(values.get("max_position_embeddings", 512))
        # RoBERTa-family tables start text at row pad_token_id + 1 (model/encoders/roberta.py): 514 rows, 512 positions
        if values.get("model_type") in ROBERTA_FAMILY:
            positions -= int(values.get("pad_token_id", 1)) + 1
        return positions
    except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{config}: not a valid encoder config ({e})") from None


def check_trim_vocab(model, model_path):
    """model.trim_vocab restricts a Unigram vocabulary (data/vocab_trim.py); with any other tokenizer it
    would fail only once the training split is read. Only the JSON's model.type is looked at."""
    if not model.trim_vocab:
        return
    kind = tokenizer_type(Path(model_path))
    if kind != "Unigram":
        raise UserError(f"model.trim_vocab=true needs a Unigram tokenizer.json (multilingual-e5, XLM-R) in "
                        f"model.path; {model_path} has {kind}: set model.trim_vocab=false")


def tokenizer_type(directory: Path) -> str:
    """The tokenizer.json's model.type (Unigram, WordPiece, BPE), else what data/tokenizer.py would load instead."""
    path = directory / "tokenizer.json"
    if path.is_file():
        try:
            kind = json.loads(path.read_text(encoding="utf-8"))["model"]["type"]
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: not valid JSON ({e})") from None
        except (KeyError, TypeError):
            raise UserError(f"{path}: not a tokenizer.json (no model.type)") from None
        return kind if kind == "Unigram" else f"a {kind} tokenizer.json"
    if any(directory.glob("*.model")):
        return "a SentencePiece model and no tokenizer.json"
    if (directory / "vocab.txt").is_file():
        return "a WordPiece vocab.txt and no tokenizer.json"
    return "no tokenizer files"


def check_optimization(optim, scheduler):
    require(optim.lr > 0, "optim.lr", optim.lr, "must be above 0")
    require(optim.weight_decay >= 0, "optim.weight_decay", optim.weight_decay, "must be at least 0")
    require(optim.eps > 0, "optim.eps", optim.eps, "must be above 0")
    betas = list(optim.betas)
    require(len(betas) == 2 and all(0 <= b < 1 for b in betas), "optim.betas", betas, "must be two numbers in [0, 1)")
    require(0 < optim.layer_decay <= 1, "optim.layer_decay", optim.layer_decay, "must be in (0, 1] (1: off)")
    for name in ("warmup_ratio", "min_lr_ratio"):
        require(0 <= scheduler[name] <= 1, f"scheduler.{name}", scheduler[name], "must be in [0, 1]")


def check_loss(loss):
    """The shape of the weights here; their label names are checked once the labels are known (training/objective.py)."""
    require(0 <= loss.label_smoothing < 1, "loss.label_smoothing", loss.label_smoothing, "must be in [0, 1)")
    for key in ("class_weights", "pos_weight"):
        value = loss[key]
        if value is None or value == "balanced":
            continue
        if not OmegaConf.is_dict(value):
            raise UserError(f"loss.{key}={value} must be null, balanced or {{label: weight, ...}}")
        for name, weight in value.items():
            ok = isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight > 0
            require(ok and math.isfinite(weight), f"loss.{key}.{name}", weight, "must be a number above 0")


def check_threshold(threshold, key: str):
    if threshold is not None:
        require(0 < threshold < 1, key, threshold, "must be in (0, 1) (a probability), or null")


def check_trainer(trainer, processes: int):
    at_least(trainer, ("max_epochs", "max_steps", "batch_size", "grad_accum_steps", "eval_batch_size",
                       "log_every", "top_losses", "projector_max_examples", "threads"), 1, "trainer.")
    at_least(trainer, ("num_workers", "save_every_steps"), 0, "trainer.")
    at_least(trainer, ("val_every_steps", "patience"), 1, "trainer.")
    require(trainer.min_delta >= 0, "trainer.min_delta", trainer.min_delta, "must be at least 0")
    check_threshold(trainer.threshold, "trainer.threshold")
    require(trainer.max_grad_norm > 0, "trainer.max_grad_norm", trainer.max_grad_norm, "must be above 0")
    check_device(trainer.device, "trainer.device")
    # trainer.batch_size is the global batch of one optimizer step, however many processes run.
    batch, accum = trainer.batch_size, trainer.grad_accum_steps
    require(batch % processes == 0, "trainer.batch_size", batch,
            f"is the global batch and must divide evenly over {processes} processes")
    share = batch // processes
    require(accum <= share, "trainer.grad_accum_steps", accum,
            f"exceeds the {share} examples each process gets per step (trainer.batch_size={batch} over {processes})")


def check_device(device: str, key: str):
    require(DEVICE.fullmatch(device) is not None, key, device, "is not one of auto, cpu, cuda, cuda:N, mps")


def resolved(cfg, key: str):
    """A value whose interpolation may fail (a resolver of a package not installed) as the user's one line."""
    try:
        return OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception as e:  # resolver errors come in several types; all mean "this value cannot be had"
        raise UserError(f"{key}: {str(e).splitlines()[0]}") from None
