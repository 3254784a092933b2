"""Evaluate a checkpoint: accuracy, macro/weighted F1, per-class scores, confusion matrix; optionally
error analysis files (analysis=DIR) and baselines (baselines=true).

    python evaluate.py checkpoint=outputs/tweets/<run>/checkpoints/best
    python evaluate.py checkpoint=DIR data=files data.test=my_test.jsonl out=report.json
    python evaluate.py checkpoint=DIR split=validation analysis=analysis/ baselines=true
    python evaluate.py checkpoint=DIR predictions=test.npz          # per-example, for python -m research.compare
    python evaluate.py checkpoint=DIR baselines=true baseline_predictions=DIR   # the baselines' too
    python evaluate.py checkpoint=DIR threshold=0.3                 # multi-label: one fixed threshold
    python evaluate.py checkpoint='multirun/X/*/checkpoints/best' predictions=ens.npz   # an ensemble
"""
import common.startup  # noqa: F401  (first: Ctrl-C while the imports below load is one line, exit 130)
import json
from pathlib import Path

import numpy as np

import hydra
from omegaconf import DictConfig
from torch.utils.tensorboard import SummaryWriter

import common.config  # noqa: F401  (registers config resolvers)
from data.build import label_ids, read_split
from data.readers import Examples
from data.dataset import ClassificationDataset
from evaluation.analysis import display_texts, write_analysis, write_calibration_analysis
from evaluation.baselines import BaselineScore, Baselines, checkpoint_train_config, format_comparison
from common.checks import check_evaluate
from common.cli import check_overrides
from common.errors import UserError, exit_on_user_error
from common.output_paths import check_output_dir, check_output_file, write_text_atomic
from common.path_lists import listed_paths
from data.digest import texts_digest
from evaluation.scoring import Evaluation, evaluate_with_outputs, score_outputs
from inference.batches import eval_loader, prepare_for_inference
from evaluation.metrics import format_report
from evaluation.multilabel_baselines import MultilabelBaselines
from inference.decision import decision_of
from inference.ensemble import as_logits, check_member, mean_probabilities
from evaluation.predictions import Predictions, predictions_of, write_predictions
from inference.runtime import configure_cpu, pick_device
from model.checkpoint import load_checkpoint


def data_config_of(cfg: DictConfig, checkpoint):
    """The data group given on the command line, else the one the checkpoint was trained on."""
    if cfg.get("data") is not None:
        return cfg.data
    return checkpoint_train_config(checkpoint, "data=... to say what to evaluate on", "data")


def check_outputs(cfg: DictConfig, n_checkpoints: int):
    if n_checkpoints > 1 and (cfg.analysis or cfg.baselines):
        raise UserError(f"checkpoint= names {n_checkpoints} checkpoints (an ensemble): analysis= and baselines=true "
                        "take one checkpoint")
    if cfg.baseline_predictions and not cfg.baselines:
        raise UserError(f"baseline_predictions={cfg.baseline_predictions}: add baselines=true (it holds their files)")
    if cfg.out:
        check_output_file(cfg.out, "out")
    if cfg.predictions:
        check_output_file(cfg.predictions, "predictions")
    if cfg.analysis:
        check_output_dir(cfg.analysis, "analysis")
    if cfg.baseline_predictions:
        check_output_dir(cfg.baseline_predictions, "baseline_predictions")


def score_checkpoint(cfg: DictConfig, loaded, examples, device, with_vectors=False) -> tuple[Evaluation, int]:
    """One checkpoint's evaluation of `examples`, and how many texts it truncated."""
    dataset = ClassificationDataset(examples.texts, label_ids(examples, loaded.info.labels, loaded.info.multi_label),
                                    loaded.transform, examples.texts_b)
    mixed_precision = prepare_for_inference(loaded.model, device, cfg.precision, cfg.pack_weights)
    decision = decision_of(loaded.info).with_threshold(cfg.threshold)
    return evaluate_with_outputs(loaded.model, eval_loader(dataset, cfg.batch_size), device, mixed_precision,
                                 loaded.info.labels, with_vectors, decision), dataset.n_truncated


def score_ensemble(cfg: DictConfig, checkpoints: list, device) -> tuple[Evaluation, Examples, list[str]]:
    """The members one at a time (one model in memory), each on the split as its own data config reads it
    (or data=...), which must give every member the same examples; scored on their mean probabilities."""
    probabilities = []
    for checkpoint in checkpoints:
        loaded = load_checkpoint(checkpoint, device)
        member_examples = read_split(data_config_of(cfg, checkpoint), cfg.split)
        member_digest = texts_digest(member_examples.texts, member_examples.texts_b)
        if not probabilities:
            labels, examples, digest = loaded.info.labels, member_examples, member_digest
        check_member(str(checkpoint), loaded.info.labels, loaded.info.multi_label, str(checkpoints[0]), labels)
        if member_digest != digest:
            raise UserError(f"{checkpoint}: its {cfg.split} split is not {checkpoints[0]}'s (other data or another "
                            "fold); the members must be scored on the same examples: split=test, or data=...")
        result, _ = score_checkpoint(cfg, loaded, member_examples, device)
        probabilities.append(result.probabilities)
        print(f"{checkpoint}: accuracy {result.metrics['accuracy']:.4f}, macro-F1 {result.metrics['macro_f1']:.4f}")
        del loaded, result
    mean = mean_probabilities(probabilities)
    return score_outputs(as_logits(mean), label_ids(examples, labels), labels), examples, labels


def write_baseline_predictions(directory, scored: list[BaselineScore], gold, labels: list[str], texts_sha256: str
                               ) -> list[Path]:
    """DIR/<baseline>.npz per baseline: the predictions format (evaluation/predictions.py), its logits the
    logarithm of its probabilities."""
    written = []
    Path(directory).mkdir(parents=True, exist_ok=True)
    for score in scored:
        path = Path(directory) / f"{score.short_name}.npz"
        write_predictions(path, Predictions(np.arange(len(gold)), gold, score.probabilities.argmax(1),
                                            score.probabilities, as_logits(score.probabilities), labels,
                                            texts_sha256=texts_sha256))
        written.append(path)
    return written


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig):
    check_evaluate(cfg)
    checkpoints = listed_paths(cfg.checkpoint)
    check_outputs(cfg, len(checkpoints))  # before a model is loaded or anything evaluated
    configure_cpu(cfg.threads)
    device = pick_device(cfg.device)
    baselines = None
    if len(checkpoints) == 1:
        loaded = load_checkpoint(checkpoints[0], device)
        data_cfg = data_config_of(cfg, checkpoints[0])
        examples = read_split(data_cfg, cfg.split)
        labels = loaded.info.labels
        if cfg.baseline_predictions and loaded.info.multi_label:
            raise UserError("baseline_predictions= is for single-label checkpoints (multi-label baselines keep no "
                            "per-example probabilities)")
        # The baselines' inputs are read and checked before the evaluation pass: a mistake costs no time.
        chosen = MultilabelBaselines if loaded.info.multi_label else Baselines
        baselines = chosen.prepare(cfg, data_cfg, loaded, device) if cfg.baselines else None
        # Vectors come from the same pass, for the projector.
        result, n_truncated = score_checkpoint(cfg, loaded, examples, device, with_vectors=bool(cfg.analysis))
        print(f"{examples.source}: {len(examples)} examples, {n_truncated} truncated to "
              f"{loaded.info.max_len} tokens\n")
    else:
        result, examples, labels = score_ensemble(cfg, checkpoints, device)
        print(f"\n{examples.source}: {len(examples)} examples; an ensemble of {len(checkpoints)} checkpoints "
              "(the mean of their probabilities)\n")
    metrics = result.metrics
    print(format_report(metrics, labels))
    report = {"source": examples.source, "split": cfg.split, **metrics}
    if len(checkpoints) > 1:
        report["ensemble_of"] = [str(c) for c in checkpoints]
    texts_sha256 = texts_digest(examples.texts, examples.texts_b)
    if baselines is not None:
        scored = baselines.scores(examples, result.labels, labels)
        report["baselines"] = [score.report for score in scored]
        print(format_comparison([{"name": "fine-tuned model", **metrics}, *report["baselines"]]))
        if cfg.baseline_predictions:
            written = write_baseline_predictions(cfg.baseline_predictions, scored, result.labels, labels, texts_sha256)
            print(f"\nwrote {', '.join(map(str, written))} (python -m research.compare FILE ...)")
    if cfg.analysis:
        events = Path(cfg.analysis) / "tensorboard"
        with SummaryWriter(str(events)) as writer:
            written = write_analysis(cfg.analysis, writer, cfg.split, result, labels, display_texts(examples), 0,
                                     cfg.top_losses, cfg.projector_max_examples)
            written += write_calibration_analysis(cfg.analysis, writer, {cfg.split: result}, 0)
        print(f"\nwrote {', '.join(map(str, written))}; TensorBoard (images, PR curves, text, projector): "
              f"tensorboard --logdir {events}")
    if cfg.predictions:
        write_predictions(cfg.predictions, predictions_of(result, labels, texts_sha256))
        print(f"\nwrote {cfg.predictions}")
    if cfg.out:
        write_text_atomic(cfg.out, json.dumps(report, indent=2, ensure_ascii=False))
        print(f"\nwrote {cfg.out}")


if __name__ == "__main__":
    check_overrides("evaluate", checks=check_evaluate)
    main()
