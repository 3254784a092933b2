"""Fine-tune a BERT-family encoder for text classification.

    python train.py                                  # all-MiniLM-L6-v2 on the embedded tweets
    python train.py data=emotion optim.lr=5e-5 trainer.max_epochs=2
    python train.py -m optim.lr=1e-4,5e-5 model.dropout=0.1,0.5   # Hydra multirun sweep
    torchrun --nproc_per_node=2 train.py data=emotion             # data-parallel (DDP), same global batch

The run directory (printed at start) receives metrics.json, checkpoints/best/ and TensorBoard events.
The loop itself (steps, validation, best and resumable checkpoints) is training/loop.py.
"""
import common.startup  # noqa: F401  (first: Ctrl-C while the imports below load is one line, exit 130)
import signal
import sys
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

import common.config  # noqa: F401  (registers the conf/ resolvers)
from common.checks import check_train
from common.cli import check_overrides
from common.errors import UserError, exit_on_user_error
from common.output_paths import check_output_dir
from common.run_lock import check_run_directory_argument, run_directory_lock
from model.checkpoint import ClassifierInfo, load_checkpoint, load_weights, save_checkpoint, with_decision
from model.encoders.families import describe_model, family_of_directory
from inference.batches import eval_loader
from inference.decision import Decision, decision_of
from inference.runtime import autocast, configure_cpu, seed_everything
from evaluation.analysis import write_analysis, write_calibration_analysis
from evaluation.calibration import fit_temperature
from evaluation.predictions import predictions_of, predictions_path, write_predictions
from evaluation.scoring import evaluate_with_outputs, score_outputs
from training.build import build_data, build_model, build_optimization, loader_options, planned_steps
from training.distributed import (NullWriter, init_distributed, launch_env, leaves_process_group, share_from_main,
                                wrap_model)
from training.loop import Checkpoints, Training, TrainingStopped, fit
from training.objective import build_objective, describe_objective
from training.optim import lr_groups
from training.resume import (TrainingProgress, adopt_settings, carry_best_checkpoint, check_trimmed_vocabulary,
                             optimizer_settings, read_training_state, recorded_step, resume_command, resume_directory)
from training.run_identity import compare_identity, read_identity, restore_hydra_record, run_identity
from training.tracking import MULTI_LABEL_ONLY, FinalScores, log_hparams, write_run_metrics


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
@exit_on_user_error
@leaves_process_group
def main(cfg: DictConfig) -> float:
    check_config(cfg)
    return train(cfg, HydraConfig.get().runtime.output_dir)


def check_config(cfg: DictConfig):
    """Every value, before anything slow (common/checks.py); the batch split over this launch's processes;
    an encoder family we load (model/encoders/families.py)."""
    check_train(cfg, launch_env().world_size)
    family_of_directory(cfg.model.path)


def train(cfg: DictConfig, output_dir) -> float:
    """One training run in this process; returns the best validation value of trainer.monitor
    (what a sweeper optimizes). Rank 0 writes into `output_dir` (its choice wins under DDP), and holds
    the directory's lock while it does (common/run_lock.py: one writer per run directory)."""
    tcfg = cfg.trainer
    configure_cpu(tcfg.threads)
    seed_everything(cfg.seed)
    ddp, device = init_distributed(tcfg.device)  # under torchrun: one process per device
    run_dir = Path(share_from_main(ddp, str(output_dir)))
    print(f"run directory: {run_dir}")
    if ddp.is_main:
        check_output_dir(run_dir, "hydra.run.dir")
        run_dir.mkdir(parents=True, exist_ok=True)
    with run_directory_lock(run_dir, enabled=ddp.is_main):
        return train_in(cfg, run_dir, ddp, device)


def train_in(cfg: DictConfig, run_dir: Path, ddp, device) -> float:
    tcfg = cfg.trainer
    best_dir, last_dir = run_dir / "checkpoints" / "best", run_dir / "checkpoints" / "last"
    resume_dir = resume_directory(tcfg.resume, last_dir)

    data = build_data(cfg, ddp, device)  # tokenized once, batched by similar length, padded per batch
    check_monitor(tcfg, data.multi_label)
    # What this run is (labels, splits' content, the config's maths), compared on resume before training.
    identity = run_identity(cfg, data.label_names, data.split_digests)
    if resume_dir is not None:
        if data.kept_rows is not None:
            check_trimmed_vocabulary(resume_dir, data.tokenizer)
        identity["changes"], changed_now = checked_resume(resume_dir, identity, tcfg.resume_changes, run_dir)
    # softmax cross-entropy, or a sigmoid per label (multi-label data); class weights, smoothing, pos_weight
    objective, loss_weights = build_objective(cfg.loss, data.label_names, data.datasets["train"].labels)
    print(describe_objective(objective, data.label_names, loss_weights, tcfg))

    # ---- model, optimizer, schedule
    model = build_model(cfg, len(data.label_names), device, data.kept_rows, data.label_names)
    if data.multi_label and not model.pretrained_head:
        model.start_at_label_frequencies(data.datasets["train"].labels.mean(0))
    seed_everything(cfg.seed + ddp.rank)  # same initial weights everywhere, different dropout masks per rank
    total_steps = planned_steps(tcfg, len(data.train_loader))
    optimizer, scheduler, warmup_steps = build_optimization(cfg, model, total_steps, ddp.world_size)
    parallel_model, no_sync = wrap_model(ddp, model, device)  # DDP averages gradients over processes
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(describe_model(model))
    print(f"{trainable / 1e6:.1f}M trainable parameters, {total_steps} steps ({len(data.train_loader)}/epoch) of "
          f"{tcfg.batch_size} examples = {ddp.world_size} process(es) x {tcfg.grad_accum_steps} micro-batch(es), "
          f"warmup {warmup_steps}, {tcfg.precision} on {device}")

    # ---- resume: weights, optimizer, schedule, RNG and position in the epoch, from checkpoints/last
    progress = TrainingProgress()
    if resume_dir is not None:
        load_weights(resume_dir, model)
        configured = optimizer_settings(optimizer, scheduler)
        progress = read_training_state(resume_dir, optimizer, scheduler, ddp.rank)
        if changed_now:  # trainer.resume_changes: the config's optimizer settings hold from here on
            adopt_settings(optimizer, scheduler, configured)
        if ddp.is_main and progress.best is not None and resume_dir.parent != best_dir.parent:
            carry_best_checkpoint(resume_dir, best_dir)  # resumed into another run directory
        print(f"resumed from {resume_dir} at step {progress.step} "
              f"(epoch {progress.epoch + 1}, batch {progress.batch_in_epoch})")

    # ---- the loop (training/loop.py). purge_step drops events logged after the checkpoint we resumed
    # from: curves continue, no duplicates.
    writer = (SummaryWriter(str(run_dir / "tensorboard"), purge_step=progress.step + 1 if resume_dir else None)
              if ddp.is_main else NullWriter())
    info = ClassifierInfo(data.label_names, model.pooling, cfg.data.max_len, data.pair, cfg.model.dropout,
                          cfg.data.text_prefix, data.multi_label, loss_weights=loss_weights, head=cfg.model.head)
    checkpoints = Checkpoints(best_dir, last_dir, info, data.tokenizer, OmegaConf.to_yaml(cfg, resolve=True),
                              identity)
    run = Training(
        cfg=tcfg, model=model, forward=torch.compile(parallel_model) if tcfg.compile else parallel_model,
        objective=objective.to(device), optimizer=optimizer, scheduler=scheduler, lr_groups=lr_groups(optimizer),
        total_steps=total_steps, train_loader=data.train_loader, val_loader=data.val_loader,
        label_names=data.label_names, val_texts=data.val_texts, device=device,
        mixed_precision=autocast(device, tcfg.precision), ddp=ddp, no_sync=no_sync,
        checkpoints=checkpoints, writer=writer)
    try:
        fit(run, progress)
    except TrainingStopped as stopped:
        writer.close()
        if ddp.is_main:
            print(f"stopped by {signal.Signals(stopped.signum).name} at step {progress.step}; checkpoint saved to "
                  f"{last_dir}.\nresume with: {resume_command(run_dir, ddp.world_size)}", file=sys.stderr)
        sys.exit(128 + stopped.signum)
    if ddp.is_main:
        final = score_best_checkpoint(run, cfg, progress, data.datasets["test"], run_dir, data.texts_digests)
        excluded = None if data.excluded is None else {"file": cfg.data.exclude, "dropped": data.excluded}
        write_run_metrics(run_dir / "metrics.json", progress, final, data.label_names, tcfg.batch_size,
                          identity["changes"], excluded)
    return progress.best[tcfg.monitor]


def checked_resume(resume_dir: Path, identity: dict, allowed, run_dir: Path) -> tuple[list[dict], bool]:
    """The changes since the run started that the user allowed (trainer.resume_changes), and whether this
    resume adds any; any other difference is refused before anything is built or trained
    (training/run_identity.py)."""
    recorded = read_identity(resume_dir)
    if recorded is None:  # written before run identities existed: nothing to compare against
        print(f"note: {resume_dir} records no run identity (an older checkpoint): data and settings not checked")
        return [], False
    try:
        changes = compare_identity(recorded, identity, allowed, resume_dir, recorded_step(resume_dir))
        return changes, len(changes) > len(recorded.get("changes", []))
    except UserError:
        restore_hydra_record(run_dir, resume_dir)
        raise


def check_monitor(tcfg, multi_label: bool):
    if not multi_label and tcfg.monitor in MULTI_LABEL_ONLY:
        raise UserError(f"trainer.monitor={tcfg.monitor} exists for multi-label data only; this data is "
                        "single-label (accuracy | macro_f1 | loss)")
    if multi_label and tcfg.calibrate:
        raise UserError("trainer.calibrate=true fits a softmax temperature, for single-label data; multi-label "
                        "decisions are calibrated by their thresholds (trainer.threshold)")


def score_best_checkpoint(run: Training, cfg, progress: TrainingProgress, test_set, run_dir: Path,
                          texts_digests: dict[str, str]) -> FinalScores:
    """The best checkpoint, loaded exactly as evaluate.py loads it, on validation and test: optionally
    calibrated on validation first (trainer.calibrate, saved into the checkpoint), per-example predictions
    of both splits beside metrics.json, and with trainer.analysis the error analysis of both."""
    tcfg, writer, best_dir = cfg.trainer, run.writer, run.checkpoints.best_dir
    loaded = load_checkpoint(best_dir, run.device)
    decision = decision_of(loaded.info)
    test_loader = eval_loader(test_set, tcfg.eval_batch_size, **loader_options(tcfg, run.device))
    val = evaluate_with_outputs(loaded.model, run.val_loader, run.device, run.mixed_precision, run.label_names,
                                with_vectors=tcfg.analysis, decision=decision)
    test = evaluate_with_outputs(loaded.model, test_loader, run.device, run.mixed_precision, run.label_names,
                                 decision=decision)
    uncalibrated = None
    if tcfg.calibrate:  # the temperature from validation's logits; both splits rescored, no second pass
        uncalibrated = {"validation": val.metrics, "test": test.metrics}
        decision = Decision(temperature=fit_temperature(val.logits, val.labels))
        c = run.checkpoints
        save_checkpoint(best_dir, loaded.model, with_decision(loaded.info, decision), c.tokenizer, c.config_yaml)
        val, test = (score_outputs(o.logits, o.labels, run.label_names, decision, o.vectors) for o in (val, test))
        print(f"calibrated: temperature {decision.temperature:.3f}, validation ECE "
              f"{uncalibrated['validation']['ece']:.4f} -> {val.metrics['ece']:.4f} (saved in {best_dir})")
    for split, outputs in (("validation", val), ("test", test)):
        write_predictions(predictions_path(run_dir, split),
                          predictions_of(outputs, run.label_names, texts_digests[split]))
    log_hparams(writer, cfg, progress.best, test.metrics, progress.step)  # test/* + this run's HParams entry
    if tcfg.analysis:
        write_analysis(run_dir / "analysis", writer, "best_validation", val, run.label_names, run.val_texts,
                       progress.step, tcfg.top_losses, tcfg.projector_max_examples)
        write_calibration_analysis(run_dir / "analysis", writer, {"validation": val, "test": test}, progress.step)
    writer.close()
    fixed = ({threshold: score_outputs(test.logits, test.labels, run.label_names,
                                       decision.with_threshold(threshold)).metrics for threshold in (0.3, 0.5)}
             if decision.multi_label else None)
    return FinalScores(test.metrics, val.metrics, uncalibrated, fixed, decision)


if __name__ == "__main__":
    check_overrides("config", checks=check_config)
    exit_on_user_error(check_run_directory_argument)(sys.argv[1:])  # before Hydra writes into it
    main()
