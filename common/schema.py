"""The types behind conf/: one dataclass per config group and entry config, in Hydra's ConfigStore.

The YAML files stay what users read and edit; each names its schema first in its defaults list
(`- /schema/model@_here_`), so Hydra checks every value against these types while it composes. A
wrong type (`seed=abc`), an unknown choice (`model.pooling=max`) or a misspelt key fails there,
before any code of ours runs. Ranges and relations between keys (dropout below 1, max_len within the
encoder's positions, ...) are common/checks.py's.

Keys whose value is legitimately a path, a name or an interpolation (`model.path: ${e5_encoder:}`,
`model.name: ${oc.select:model.path,bert}`) are plain strings: interpolations resolve later.
"""
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


# Choices. StrEnum members compare, hash, print and serialize as their string, so code that reads them
# (`pooling == "mean"`, json.dumps, f-strings, OmegaConf.to_yaml) sees plain strings.
class Pooling(StrEnum):
    pooler = "pooler"  # tanh(dense([CLS])), as the KoBERT tutorial classifies
    cls = "cls"
    mean = "mean"


class Head(StrEnum):
    linear = "linear"  # model.pooling, dropout, one Linear: for fresh fine-tuning
    family = "family"  # the encoder family's own *ForSequenceClassification head (model/classifier.py)


class FileFormat(StrEnum):
    auto = "auto"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"
    txt = "txt"
    xlsx = "xlsx"


class DecodeErrors(StrEnum):
    strict = "strict"
    replace = "replace"


class EmptyText(StrEnum):
    skip = "skip"
    error = "error"


class Precision(StrEnum):
    bf16 = "bf16"
    fp32 = "fp32"


class Runtime(StrEnum):
    auto = "auto"  # predict.py: ONNX Runtime at the prompt on CPU in fp32, torch otherwise (inference/predictor.py)
    torch = "torch"
    onnx = "onnx"


class Monitor(StrEnum):
    accuracy = "accuracy"  # multi-label: subset accuracy (every label of the text right)
    macro_f1 = "macro_f1"
    loss = "loss"
    micro_f1 = "micro_f1"  # these three: multi-label only
    samples_f1 = "samples_f1"
    mean_ap = "mean_ap"


# "global" is a Python keyword, hence the functional form (as Implementation below).
ThresholdScope = StrEnum("ThresholdScope", {"per_label": "per_label", "global": "global"})


class ThresholdMetric(StrEnum):
    macro_f1 = "macro_f1"
    micro_f1 = "micro_f1"


class OnNonfinite(StrEnum):
    stop = "stop"
    skip = "skip"


class Split(StrEnum):
    train = "train"
    validation = "validation"
    test = "test"


class ExportFormat(StrEnum):
    hf = "hf"
    onnx = "onnx"


# "for-loop" is no Python identifier, hence the functional form.
Implementation = StrEnum("Implementation", {"fused": "fused", "foreach": "foreach", "for-loop": "for-loop"})


# Config groups (conf/<group>/): defaults equal the YAML's, which is where they are documented.
@dataclass
class ModelConfig:
    name: str = MISSING
    path: str = MISSING
    pooling: Pooling = Pooling.pooler
    head: Head = Head.linear
    dropout: float = 0.1
    freeze_embeddings: bool = False
    fast_dropout: bool = True
    first_token_only: bool = True
    trim_vocab: bool = False


@dataclass
class SplitFractions:
    train: float = 0.8
    validation: float = 0.1
    test: float = 0.1


@dataclass
class DataConfig:
    name: str = MISSING
    train: Optional[str] = None
    validation: Optional[str] = None
    test: Optional[str] = None
    format: FileFormat = FileFormat.auto
    text_column: str = "text"
    label_column: str = "label"
    text_b_column: Optional[str] = None
    delimiter: str = ";"
    encoding: str = "utf-8"  # any text codec Python knows: checked by common/checks.py
    decode_errors: DecodeErrors = DecodeErrors.strict
    empty_text: EmptyText = EmptyText.skip
    labels: Optional[list[str]] = None
    dedup: bool = False
    exclude: Optional[str] = None  # CSV of training examples to drop (data/exclude.py)
    split: SplitFractions = field(default_factory=SplitFractions)
    split_seed: int = 1234
    folds: Optional[int] = None
    fold: Optional[int] = None
    max_len: int = 64
    text_prefix: str = ""
    multi_label: Optional[bool] = None
    label_delimiter: Optional[str] = None
    allow_empty_labels: bool = False
    empty_label: EmptyText = EmptyText.error  # single-label: a row whose label is empty or null: error | skip (counted)


@dataclass
class OptimConfig:
    name: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    implementation: Implementation = Implementation.fused
    layer_decay: float = 1.0
    sparse_embedding: bool = True


@dataclass
class LossConfig:
    class_weights: Any = None  # null | balanced | {label: weight}: checked by common/checks.py
    label_smoothing: float = 0.0
    pos_weight: Any = None  # multi-label: null | balanced | {label: weight}


@dataclass
class SchedulerConfig:
    name: str = "cosine"
    warmup_ratio: float = 0.1
    min_lr_ratio: float = 0.0


@dataclass
class TrainerConfig:
    max_epochs: int = 2
    max_steps: Optional[int] = None
    batch_size: int = 32
    grad_accum_steps: int = 1
    eval_batch_size: int = 128
    max_grad_norm: float = 1.0
    clip_in_optimizer: bool = True
    precision: Precision = Precision.bf16
    device: str = "auto"  # auto | cpu | cuda | cuda:N: checked by common/checks.py
    threads: Optional[int] = None
    group_by_length: bool = True
    num_workers: int = 0
    compile: bool = False
    monitor: Monitor = Monitor.accuracy
    log_every: int = 50
    analysis: bool = True
    top_losses: int = 20
    projector_max_examples: int = 5000
    save_every_steps: Optional[int] = 500
    resume: Optional[str] = None  # null | auto | a path
    resume_changes: list[str] = field(default_factory=list)  # keys a resume may find changed: training/run_identity.py
    on_nonfinite: OnNonfinite = OnNonfinite.stop
    val_every_steps: Optional[int] = None
    patience: Optional[int] = None
    min_delta: float = 0.0
    calibrate: bool = False
    threshold: Optional[float] = None
    threshold_scope: ThresholdScope = ThresholdScope.per_label
    threshold_metric: ThresholdMetric = ThresholdMetric.macro_f1


# Entry configs (conf/<name>.yaml). Groups are `Any` here: each group's own schema types them.
@dataclass
class TrainConfig:
    seed: int = 42
    shared_datasets: str = MISSING
    model: Any = None
    data: Any = None
    optim: Any = None
    scheduler: Any = None
    loss: Any = None
    trainer: Any = None


@dataclass
class EvaluateConfig:
    checkpoint: str = MISSING
    split: Split = Split.test
    out: Optional[str] = None
    analysis: Optional[str] = None
    top_losses: int = 20
    projector_max_examples: int = 5000
    baselines: bool = False
    baseline_predictions: Optional[str] = None
    baseline_encoder: Optional[str] = None
    baseline_pooling: Optional[Pooling] = None
    batch_size: int = 128
    precision: Precision = Precision.bf16
    pack_weights: bool = False
    device: str = "auto"
    threads: Optional[int] = None
    shared_datasets: str = MISSING
    data: Any = None  # null: the checkpoint's own training data config
    predictions: Optional[str] = None
    threshold: Optional[float] = None


@dataclass
class PredictConfig:
    checkpoint: str = MISSING
    text: Optional[str] = None
    batch_size: int = 64
    precision: Precision = Precision.fp32
    runtime: Runtime = Runtime.torch
    pack_weights: bool = True
    device: str = "auto"
    threads: Optional[int] = None
    threshold: Optional[float] = None


@dataclass
class ReportConfig:
    out: str = MISSING
    shared_datasets: str = MISSING
    model: Any = None
    data: Any = None


@dataclass
class ExportConfig:
    checkpoint: str = MISSING
    format: ExportFormat = ExportFormat.hf
    out: str = MISSING
    overwrite: bool = False
    opset: int = 18


GROUPS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "scheduler": SchedulerConfig,
          "loss": LossConfig, "trainer": TrainerConfig}
ENTRIES = {"config": TrainConfig, "evaluate": EvaluateConfig, "predict": PredictConfig, "report": ReportConfig,
           "export": ExportConfig}


def register():
    """schema/<group> and schema/<entry config> in the ConfigStore, where conf/'s defaults lists find them."""
    store = ConfigStore.instance()
    for name, node in {**GROUPS, **ENTRIES}.items():
        store.store(group="schema", name=name, node=node)


register()
