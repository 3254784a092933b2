"""What a run records so that runs can be compared: which way each monitored metric is better, and
the run's TensorBoard HParams entry (hyperparameters + final metrics) in the run's own event files.

torch's `SummaryWriter.add_hparams` writes into a new sub-run named by the clock, so the HParams
tab shows every job twice, its metrics apart from its curves. We write the same three summaries
(experiment, session start, session end) into the writer of the curves instead: one run per job.
Also the run's metrics.json, which the sweep summary and users read.
"""
import json
from dataclasses import dataclass

from omegaconf import OmegaConf

from common.output_paths import write_text_atomic

# +1: higher is better. The last three exist for multi-label data only.
MONITORS = {"accuracy": +1, "macro_f1": +1, "loss": -1, "micro_f1": +1, "samples_f1": +1, "mean_ap": +1}
MULTI_LABEL_ONLY = ("micro_f1", "samples_f1", "mean_ap")

# The HParams table's hyperparameter columns: name -> (config key, type). trainer.batch_size is the
# effective batch (examples per optimizer step, over all processes and accumulation steps);
# micro_batch_size, what one forward pass of one process sees, is added by run_hparams.
HPARAMS = {
    "lr": ("optim.lr", float),
    "dropout": ("model.dropout", float),
    "batch_size": ("trainer.batch_size", int),
    "grad_accum_steps": ("trainer.grad_accum_steps", int),
    "max_epochs": ("trainer.max_epochs", int),
    "warmup_ratio": ("scheduler.warmup_ratio", float),
    "weight_decay": ("optim.weight_decay", float),
    "layer_decay": ("optim.layer_decay", float),
    "label_smoothing": ("loss.label_smoothing", float),
    "max_len": ("data.max_len", int),
    "encoder": ("model.name", str),
    "pooling": ("model.pooling", str),
    "seed": ("seed", int),
    "precision": ("trainer.precision", str),
    "data": ("data.name", str),
}


def monitor_direction(metric: str) -> str:
    """'maximize' | 'minimize' for trainer.monitor; conf/hparams_search/ hands it to Optuna."""
    return "maximize" if MONITORS[metric] > 0 else "minimize"


if not OmegaConf.has_resolver("monitor_direction"):
    OmegaConf.register_new_resolver("monitor_direction", monitor_direction)


def run_hparams(cfg) -> dict:
    """The hyperparameters of the HParams table. Every run logs exactly these keys, none None:
    TensorBoard takes the table's columns from one run's list, so a key some runs lack (or log as
    None, which torch drops) would vanish from, or be blank in, the whole sweep's table."""
    import torch.distributed as dist  # here, not at the top: the sweep summary CLI imports MONITORS without torch

    # configs written before gradient accumulation, layer decay or the loss group existed
    defaults = {"trainer.grad_accum_steps": 1, "optim.layer_decay": 1.0, "loss.label_smoothing": 0.0}
    values = {name: kind(OmegaConf.select(cfg, key, default=defaults.get(key)))
              for name, (key, kind) in HPARAMS.items()}
    processes = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    values["micro_batch_size"] = values["batch_size"] // (processes * values["grad_accum_steps"])
    return values


def log_hparams(writer, cfg, best: dict, test: dict, step: int):
    """Writes the run's HParams entry and the metric scalars it shows: the best validation epoch's
    accuracy/macro-F1 (at that epoch's step) and the test metrics of its checkpoint."""
    from torch.utils.tensorboard.summary import hparams

    metrics = {"best_val/accuracy": (best["accuracy"], best["step"]),
               "best_val/macro_f1": (best["macro_f1"], best["step"]),
               "test/accuracy": (test["accuracy"], step), "test/macro_f1": (test["macro_f1"], step)}
    for tag, (value, at_step) in metrics.items():
        writer.add_scalar(tag, value, at_step)
    experiment, session_start, session_end = hparams(run_hparams(cfg), {tag: v for tag, (v, _) in metrics.items()})
    mark_as_differing(experiment, {name for name, (key, _) in HPARAMS.items() if key in command_line_keys()})
    for summary in (experiment, session_start, session_end):
        writer.file_writer.add_summary(summary)


def command_line_keys() -> set[str]:
    """Config keys this job set on the command line (in a sweep: the swept ones, among others)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    return {override.split("=", 1)[0].lstrip("+~") for override in HydraConfig.get().overrides.task}


def mark_as_differing(experiment_summary, names: set[str]):
    """The HParams tab shows five hyperparameter columns until the user ticks more: those marked
    `differs` first, the rest by name (which would show batch_size..grad_accum_steps and hide lr).
    A job cannot know which values differ across its sweep; the keys it was given on the command
    line are the swept ones of a grid or an Optuna search, so those are marked."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    plugin_data = experiment_summary.value[0].metadata.plugin_data
    content = HParamsPluginData.FromString(plugin_data.content)
    for info in content.experiment.hparam_infos:
        info.differs = info.name in names
    plugin_data.content = content.SerializeToString()


@dataclass
class FinalScores:
    """The best checkpoint's scores at the end of a run (train.py score_best_checkpoint)."""
    test: dict
    validation: dict
    uncalibrated: dict | None = None  # trainer.calibrate: {"validation": ..., "test": ...} before the temperature
    test_at_fixed_thresholds: dict | None = None  # multi-label: {threshold: test metrics at it for every label}
    decision: object = None  # inference.decision.Decision of the checkpoint


SUMMARY_KEYS = ("loss", "accuracy", "macro_f1", "weighted_f1", "ece", "micro_f1", "samples_f1", "mean_ap",
                "hamming_loss")


def summary(metrics: dict) -> dict:
    return {k: metrics[k] for k in SUMMARY_KEYS if k in metrics}


def write_run_metrics(path, progress, final: FinalScores, label_names, batch_size: int,
                      resume_changes: list | None = None, excluded: dict | None = None):
    """metrics.json: the best validation epoch, its checkpoint's test metrics, the per-epoch history and
    timings (progress: training/resume.py TrainingProgress); the summary line on stdout. `resume_changes`:
    the settings or data a resume was allowed to change (trainer.resume_changes), with the step from which
    each held. `excluded`: data.exclude's file and the training rows it dropped."""
    best, train_seconds, test = progress.best, progress.train_seconds, final.test
    metrics = {"best_validation": best, "test": summary(test), "test_per_class": test["per_class"],
               "best_checkpoint_validation": summary(final.validation),
               "history": progress.history, "labels": label_names,
               "train_seconds": round(train_seconds, 1), "validation_seconds": round(progress.validation_seconds, 1),
               "steps": progress.step, "skipped_steps": progress.skipped_steps, "stopped_early": progress.stopped_early,
               # samples/s of the optimisation steps alone (validation excluded):
               "train_samples_per_second": round(progress.step * batch_size
                                                 / (train_seconds - progress.validation_seconds), 1)}
    decision = final.decision
    if final.uncalibrated is not None:
        metrics["calibration"] = {"temperature": decision.temperature,
                                  **{f"{split}_ece_before": final.uncalibrated[split]["ece"]
                                     for split in ("validation", "test")},
                                  "validation_ece_after": final.validation["ece"], "test_ece_after": test["ece"]}
    if decision is not None and decision.multi_label:
        metrics["thresholds"] = dict(zip(label_names, (round(float(t), 4) for t in decision.thresholds)))
        metrics["test_at_fixed_threshold"] = {str(t): summary(m) for t, m in final.test_at_fixed_thresholds.items()}
    if resume_changes:
        metrics["resume_changes"] = resume_changes
    if excluded:
        metrics["data_exclude"] = excluded
    write_text_atomic(path, json.dumps(metrics, indent=2, ensure_ascii=False))
    scores = (f"micro-F1 {test['micro_f1']:.4f} macro-F1 {test['macro_f1']:.4f} mAP {test['mean_ap']:.4f}"
              if "micro_f1" in test else f"accuracy {test['accuracy']:.4f} macro-F1 {test['macro_f1']:.4f}")
    print(f"test (best epoch {best['epoch']}): {scores}; trained {train_seconds:.0f}s; wrote {path}")
