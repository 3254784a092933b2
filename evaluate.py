"""Evaluate a checkpoint: accuracy, macro/weighted F1, per-class scores, confusion matrix.

    python evaluate.py checkpoint=outputs/tweets/<run>/checkpoints/best
    python evaluate.py checkpoint=DIR data=files data.test=my_test.jsonl out=report.json
"""
import json
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import engine.config  # noqa: F401  (registers config resolvers)
from data.build import label_ids, read_split
from data.dataset import ClassificationDataset
from engine.cli import check_overrides
from engine.errors import UserError, exit_on_user_error
from engine.evaluation import evaluate
from engine.inference import eval_loader
from engine.metrics import format_report
from engine.runtime import autocast, configure_cpu, pick_device
from model.checkpoint import TRAIN_CONFIG, load_checkpoint


def data_config_of(cfg: DictConfig):
    """The data group given on the command line, else the one the checkpoint was trained on."""
    if cfg.get("data") is not None:
        return cfg.data
    path = Path(cfg.checkpoint) / TRAIN_CONFIG
    if not path.is_file():
        raise UserError(f"{path} is missing: pass data=... to say what to evaluate on")
    return OmegaConf.load(path).data


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig):
    configure_cpu(cfg.threads)
    device = pick_device(cfg.device)
    loaded = load_checkpoint(cfg.checkpoint, device)
    examples = read_split(data_config_of(cfg), cfg.split)
    labels = loaded.info.labels
    dataset = ClassificationDataset(examples.texts, label_ids(examples, labels), loaded.transform,
                                    examples.texts_b)
    metrics = evaluate(loaded.model, eval_loader(dataset, cfg.batch_size), device,
                       autocast(device, cfg.precision), labels)
    print(f"{examples.source}: {len(dataset)} examples, {dataset.n_truncated} truncated to "
          f"{loaded.info.max_len} tokens\n")
    print(format_report(metrics, labels))
    if cfg.out:
        Path(cfg.out).write_text(json.dumps({"source": examples.source, "split": cfg.split, **metrics},
                                            indent=2, ensure_ascii=False))
        print(f"\nwrote {cfg.out}")


if __name__ == "__main__":
    check_overrides("evaluate")
    main()
