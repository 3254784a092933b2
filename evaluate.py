"""Evaluate a checkpoint: accuracy, macro/weighted F1, per-class scores, confusion matrix; optionally
error analysis files (analysis=DIR) and baselines (baselines=true).

    python evaluate.py checkpoint=outputs/tweets/<run>/checkpoints/best
    python evaluate.py checkpoint=DIR data=files data.test=my_test.jsonl out=report.json
    python evaluate.py checkpoint=DIR split=validation analysis=analysis/ baselines=true
    python evaluate.py checkpoint=DIR predictions=test.npz          # per-example, for python -m research.compare
    python evaluate.py checkpoint=DIR threshold=0.3                 # multi-label: one fixed threshold
"""
import common.startup  # noqa: F401  (first: Ctrl-C while the imports below load is one line, exit 130)
import json
from pathlib import Path

import hydra
from omegaconf import DictConfig
from torch.utils.tensorboard import SummaryWriter

import common.config  # noqa: F401  (registers config resolvers)
from data.build import label_ids, read_split
from data.dataset import ClassificationDataset
from evaluation.analysis import display_texts, write_analysis, write_calibration_analysis
from evaluation.baselines import Baselines, checkpoint_train_config, format_comparison
from common.checks import check_evaluate
from common.cli import check_overrides
from common.errors import exit_on_user_error
from common.output_paths import check_output_dir, check_output_file, write_text_atomic
from data.digest import texts_digest
from evaluation.scoring import evaluate_with_outputs
from inference.batches import eval_loader, prepare_for_inference
from evaluation.metrics import format_report
from evaluation.multilabel_baselines import MultilabelBaselines
from inference.decision import decision_of
from evaluation.predictions import predictions_of, write_predictions
from inference.runtime import configure_cpu, pick_device
from model.checkpoint import load_checkpoint


def data_config_of(cfg: DictConfig):
    """The data group given on the command line, else the one the checkpoint was trained on."""
    if cfg.get("data") is not None:
        return cfg.data
    return checkpoint_train_config(cfg.checkpoint, "data=... to say what to evaluate on", "data")


def check_outputs(cfg: DictConfig):
    if cfg.out:
        check_output_file(cfg.out, "out")
    if cfg.predictions:
        check_output_file(cfg.predictions, "predictions")
    if cfg.analysis:
        check_output_dir(cfg.analysis, "analysis")


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig):
    check_evaluate(cfg)
    check_outputs(cfg)  # before the model is loaded or anything evaluated
    configure_cpu(cfg.threads)
    device = pick_device(cfg.device)
    loaded = load_checkpoint(cfg.checkpoint, device)
    data_cfg = data_config_of(cfg)
    examples = read_split(data_cfg, cfg.split)
    texts_sha256 = texts_digest(examples.texts, examples.texts_b)
    labels = loaded.info.labels
    dataset = ClassificationDataset(examples.texts, label_ids(examples, labels, loaded.info.multi_label),
                                    loaded.transform, examples.texts_b)
    mixed_precision = prepare_for_inference(loaded.model, device, cfg.precision, cfg.pack_weights)
    # The baselines' inputs are read and checked before the evaluation pass: a mistake costs no time.
    chosen = MultilabelBaselines if loaded.info.multi_label else Baselines
    baselines = chosen.prepare(cfg, data_cfg, loaded, device) if cfg.baselines else None
    decision = decision_of(loaded.info).with_threshold(cfg.threshold)
    # Vectors come from the same pass, for the projector.
    result = evaluate_with_outputs(loaded.model, eval_loader(dataset, cfg.batch_size), device, mixed_precision,
                                   labels, with_vectors=bool(cfg.analysis), decision=decision)
    metrics = result.metrics
    print(f"{examples.source}: {len(dataset)} examples, {dataset.n_truncated} truncated to "
          f"{loaded.info.max_len} tokens\n")
    print(format_report(metrics, labels))
    report = {"source": examples.source, "split": cfg.split, **metrics}
    if baselines is not None:
        report["baselines"] = baselines.scores(examples, result.labels, labels)
        print(format_comparison([{"name": "fine-tuned model", **metrics}, *report["baselines"]]))
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
