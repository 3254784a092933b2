"""Evaluate a checkpoint: accuracy, macro/weighted F1, per-class scores, confusion matrix; optionally
error analysis files (analysis=DIR) and baselines (baselines=true).

    python evaluate.py checkpoint=outputs/tweets/<run>/checkpoints/best
    python evaluate.py checkpoint=DIR data=files data.test=my_test.jsonl out=report.json
    python evaluate.py checkpoint=DIR split=validation analysis=analysis/ baselines=true
"""
import json
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

import common.config  # noqa: F401  (registers config resolvers)
from data.build import label_ids, read_split
from data.dataset import ClassificationDataset
from engine.analysis import display_texts, write_analysis
from engine.baselines import FrozenEncoder, format_comparison, logistic_regression, most_frequent_class
from common.checks import check_evaluate
from common.cli import check_overrides
from common.errors import UserError, exit_on_user_error
from engine.evaluation import evaluate_with_outputs
from engine.inference import eval_loader, prepare_for_inference
from engine.metrics import format_report
from engine.runtime import configure_cpu, pick_device
from model.checkpoint import TRAIN_CONFIG, load_checkpoint
from model.classifier import POOLINGS


def train_config_of(cfg: DictConfig, needed_for: str):
    path = Path(cfg.checkpoint) / TRAIN_CONFIG
    if not path.is_file():
        raise UserError(f"{path} is missing: pass {needed_for}")
    return OmegaConf.load(path)


def data_config_of(cfg: DictConfig):
    """The data group given on the command line, else the one the checkpoint was trained on."""
    if cfg.get("data") is not None:
        return cfg.data
    return train_config_of(cfg, "data=... to say what to evaluate on").data


def pretrained_encoder_of(cfg: DictConfig) -> Path:
    """baseline_encoder, else the encoder the checkpoint was fine-tuned from (its model.path)."""
    if cfg.baseline_encoder:
        path, key = Path(cfg.baseline_encoder), "baseline_encoder"
    else:
        path, key = Path(train_config_of(cfg, "baseline_encoder=DIR").model.path), f"model.path in {TRAIN_CONFIG}"
    if not path.is_dir():
        raise UserError(f"{path} ({key}): pretrained encoder directory not found; pass baseline_encoder=DIR")
    return path


def frozen_encoder_of(cfg: DictConfig, loaded, device) -> FrozenEncoder:
    pooling = cfg.baseline_pooling or loaded.info.pooling
    if pooling not in POOLINGS:
        raise UserError(f"baseline_pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
    return FrozenEncoder(pretrained_encoder_of(cfg), pooling, loaded.info.max_len, loaded.info.pair, device,
                         cfg.precision, cfg.pack_weights, cfg.batch_size)


def baselines(encoder: FrozenEncoder, train, train_labels, examples, eval_labels, label_names) -> list[dict]:
    """Most frequent class and logistic regression on frozen-encoder vectors, fitted on the training split."""
    started = time.perf_counter()
    train_vectors = encoder.vectors(train.texts, train.texts_b)
    eval_vectors = encoder.vectors(examples.texts, examples.texts_b)
    print(f"\nbaselines: frozen-encoder vectors of {len(train)} training + {len(examples)} evaluated texts "
          f"in {time.perf_counter() - started:.0f}s")
    return [most_frequent_class(train_labels, eval_labels, label_names),
            logistic_regression(train_vectors, train_labels, eval_vectors, eval_labels, label_names,
                                f"logistic regression, frozen encoder ({encoder.pooling})")]


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig):
    check_evaluate(cfg)
    configure_cpu(cfg.threads)
    device = pick_device(cfg.device)
    loaded = load_checkpoint(cfg.checkpoint, device)
    data_cfg = data_config_of(cfg)
    examples = read_split(data_cfg, cfg.split)
    labels = loaded.info.labels
    dataset = ClassificationDataset(examples.texts, label_ids(examples, labels), loaded.transform,
                                    examples.texts_b)
    mixed_precision = prepare_for_inference(loaded.model, device, cfg.precision, cfg.pack_weights)
    if cfg.baselines:  # their inputs are checked before the evaluation pass: a mistake costs no time
        train = read_split(data_cfg, "train")
        train_labels, frozen_encoder = label_ids(train, labels), frozen_encoder_of(cfg, loaded, device)
    # Vectors come from the same pass, for the projector.
    result = evaluate_with_outputs(loaded.model, eval_loader(dataset, cfg.batch_size), device, mixed_precision,
                                   labels, with_vectors=bool(cfg.analysis))
    metrics = result.metrics
    print(f"{examples.source}: {len(dataset)} examples, {dataset.n_truncated} truncated to "
          f"{loaded.info.max_len} tokens\n")
    print(format_report(metrics, labels))
    report = {"source": examples.source, "split": cfg.split, **metrics}
    if cfg.baselines:
        report["baselines"] = baselines(frozen_encoder, train, train_labels, examples, result.labels, labels)
        print(format_comparison([{"name": "fine-tuned model", **metrics}, *report["baselines"]]))
    if cfg.analysis:
        events = Path(cfg.analysis) / "tensorboard"
        with SummaryWriter(str(events)) as writer:
            written = write_analysis(cfg.analysis, writer, cfg.split, result, labels, display_texts(examples), 0,
                                     cfg.top_losses, cfg.projector_max_examples)
        print(f"\nwrote {', '.join(map(str, written))}; TensorBoard (images, PR curves, text, projector): "
              f"tensorboard --logdir {events}")
    if cfg.out:
        Path(cfg.out).write_text(json.dumps(report, indent=2, ensure_ascii=False))
        print(f"\nwrote {cfg.out}")


if __name__ == "__main__":
    check_overrides("evaluate", checks=check_evaluate)
    main()
