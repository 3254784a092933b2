"""Fine-tune a BERT-family encoder for text classification.

    python train.py                                  # all-MiniLM-L6-v2 on the embedded tweets
    python train.py data=emotion optim.lr=5e-5 trainer.max_epochs=2
    python train.py -m optim.lr=1e-4,5e-5 model.dropout=0.1,0.5   # Hydra multirun sweep

The run directory (printed at start) receives metrics.json, checkpoints/best/ and TensorBoard events.
"""
import json
import math
import sys
import time
from itertools import islice
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

import engine.config  # noqa: F401  (registers the ${package_file:} and ${project_root:} resolvers)
from data.build import build_datasets
from data.dataset import LengthGroupedBatchSampler
from data.tokenizer import load_tokenizer
from data.transform import BERTSentenceTransform
from engine.cli import check_overrides
from engine.build import NonFiniteGradient, build_model, build_optimization, train_step
from engine.errors import UserError, exit_on_user_error
from engine.evaluation import evaluate
from engine.inference import eval_loader
from engine.runtime import autocast, pick_device, seed_everything, configure_cpu
from engine.resume import read_training_state, write_training_state
from engine.signals import StopRequest
from model.checkpoint import (ClassifierInfo, existing_checkpoint_dir, load_checkpoint, load_weights,
                              save_checkpoint)

MONITORS = {"accuracy": +1, "macro_f1": +1, "loss": -1}  # +1: higher is better


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    tcfg = cfg.trainer
    if tcfg.monitor not in MONITORS:
        raise UserError(f"trainer.monitor={tcfg.monitor!r} is not one of {', '.join(MONITORS)}")
    if tcfg.on_nonfinite not in ("stop", "skip"):
        raise UserError(f"trainer.on_nonfinite={tcfg.on_nonfinite!r} is not one of stop, skip")
    configure_cpu(tcfg.threads)
    seed_everything(cfg.seed)
    device = pick_device(tcfg.device)
    mixed_precision = autocast(device, tcfg.precision)
    print(f"run directory: {run_dir}")

    # ---- data: tokenized once, batched by similar length, padded per batch
    tokenizer = load_tokenizer(cfg.model.path)
    transform = BERTSentenceTransform(tokenizer, cfg.data.max_len, pair=bool(cfg.data.text_b_column))
    datasets, label_names, data_stats = build_datasets(cfg.data, transform)
    for split, stats in data_stats.items():
        print(f"{split:>10}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    train_set = datasets["train"]
    train_sampler = LengthGroupedBatchSampler(train_set.valid_length, tcfg.batch_size, shuffle=True,
                                              seed=cfg.seed, group_by_length=tcfg.group_by_length)
    loader_kwargs = {"num_workers": tcfg.num_workers, "pin_memory": device.type == "cuda"}
    # Its own generator: iterating a DataLoader otherwise draws a seed from the global RNG each epoch,
    # which would shift every dropout mask after a mid-epoch resume.
    train_loader = DataLoader(train_set, batch_sampler=train_sampler, collate_fn=train_set.collate,
                              generator=torch.Generator(), **loader_kwargs)
    val_loader = eval_loader(datasets["validation"], tcfg.eval_batch_size, **loader_kwargs)

    # ---- model, optimizer, schedule
    model = build_model(cfg, len(label_names), device)
    steps_per_epoch = len(train_loader)
    total_steps = tcfg.max_epochs * steps_per_epoch
    if tcfg.max_steps:
        total_steps = min(total_steps, tcfg.max_steps)
    optimizer, scheduler, warmup_steps = build_optimization(cfg, model, total_steps)
    forward = torch.compile(model) if tcfg.compile else model
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"{sum(p.numel() for p in trainable) / 1e6:.1f}M trainable parameters, {total_steps} steps "
          f"({steps_per_epoch}/epoch), warmup {warmup_steps}, {tcfg.precision} on {device}")

    # ---- resume: weights, optimizer, schedule, RNG and position in the epoch, from checkpoints/last
    best_dir, last_dir = run_dir / "checkpoints" / "best", run_dir / "checkpoints" / "last"
    progress = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best": None, "history": [], "skipped_steps": 0,
                "train_seconds": 0.0, "validation_seconds": 0.0, "running_loss": 0.0, "running_count": 0}
    resume_dir = resume_directory(tcfg.resume, last_dir)
    if resume_dir is not None:
        load_weights(resume_dir, model)
        progress = read_training_state(resume_dir, optimizer, scheduler)
        print(f"resumed from {resume_dir} at step {progress['step']} "
              f"(epoch {progress['epoch'] + 1}, batch {progress['batch_in_epoch']})")

    # ---- the loop: one optimizer step per batch. Host syncs: the non-finite check each step (free on
    # CPU) and the loss/grad-norm readout every log_every steps.
    # purge_step drops events logged after the checkpoint we resumed from: curves continue, no duplicates.
    writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=progress["step"] + 1 if resume_dir else None)
    info = ClassifierInfo(label_names, cfg.model.pooling, cfg.data.max_len, transform.pair, cfg.model.dropout)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    sign = MONITORS[tcfg.monitor]
    stop = StopRequest()

    def save_last(epoch: int, batch_in_epoch: int):
        """Resumable checkpoint of the state after `batch_in_epoch` batches of `epoch` (0-based)."""
        progress.update(step=step, epoch=epoch, batch_in_epoch=batch_in_epoch, running_loss=running_loss.item(),
                        train_seconds=time.perf_counter() - session_start)
        save_checkpoint(last_dir, model, info, tokenizer, config_yaml,
                        lambda tmp: write_training_state(tmp, optimizer, scheduler, progress))

    step, history = progress["step"], progress["history"]
    running_loss = torch.tensor(progress["running_loss"], device=device)
    session_start = time.perf_counter() - progress["train_seconds"]
    for epoch in range(progress["epoch"], math.ceil(total_steps / steps_per_epoch)):
        first_batch = progress["batch_in_epoch"] if epoch == progress["epoch"] else 0
        train_sampler.set_epoch(epoch, first_batch)  # jumps to the batch, reads nothing before it
        model.train()
        epoch_steps = min(steps_per_epoch - first_batch, total_steps - step)  # max_steps may cut the last epoch
        progress_bar = tqdm(islice(train_loader, epoch_steps), desc=f"epoch {epoch + 1}", total=epoch_steps,
                            dynamic_ncols=True)
        for batch_index, batch in enumerate(progress_bar, start=first_batch + 1):
            try:
                loss, grad_norm, finite = train_step(forward, batch.to(device, non_blocking=True), optimizer,
                                                     scheduler, trainable, tcfg.max_grad_norm, mixed_precision,
                                                     tcfg.on_nonfinite)
            except NonFiniteGradient as e:
                last = existing_checkpoint_dir(last_dir)
                kept = f"last good checkpoint: {last}" if last.exists() else "no checkpoint saved yet"
                raise UserError(f"non-finite gradient at step {step + 1} ({e}); weights not updated, {kept}. "
                                "Lower optim.lr or set trainer.on_nonfinite=skip") from None
            step += 1
            if finite:
                running_loss += loss
                progress["running_count"] += 1
            else:
                progress["skipped_steps"] += 1
                writer.add_scalar("train/skipped_steps", progress["skipped_steps"], step)
            if step % tcfg.log_every == 0 and progress["running_count"]:
                mean_loss = (running_loss / progress["running_count"]).item()
                running_loss.zero_()
                progress["running_count"] = 0
                writer.add_scalar("train/loss", mean_loss, step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                writer.add_scalar("train/grad_norm", grad_norm.item(), step)
                progress_bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if (tcfg.save_every_steps and step % tcfg.save_every_steps == 0) or stop:
                save_last(epoch, batch_index)
            if stop:
                progress_bar.close()
                writer.close()
                print(f"stopped by {stop.signal_name} at step {step}; checkpoint saved to {last_dir}.\n"
                      f"resume with: python train.py {resume_command(run_dir)}", file=sys.stderr)
                sys.exit(128 + stop.signum)
        progress_bar.close()

        validation_start = time.perf_counter()
        val = evaluate(model, val_loader, device, mixed_precision, label_names)
        progress["validation_seconds"] += time.perf_counter() - validation_start
        for name in ("loss", "accuracy", "macro_f1"):
            writer.add_scalar(f"val/{name}", val[name], step)
        history.append({"epoch": epoch + 1, "step": step,
                        "train_seconds": round(time.perf_counter() - session_start, 1),
                        **{k: val[k] for k in ("loss", "accuracy", "macro_f1")}})
        best = progress["best"]
        improved = best is None or sign * val[tcfg.monitor] > sign * best[tcfg.monitor]
        print(f"epoch {epoch + 1}: val loss {val['loss']:.4f} accuracy {val['accuracy']:.4f} "
              f"macro-F1 {val['macro_f1']:.4f}" + ("  (best so far, saved)" if improved else ""))
        if improved:
            progress["best"] = {**history[-1]}
            save_checkpoint(best_dir, model, info, tokenizer, config_yaml)
        save_last(epoch + 1, 0)
    stop.uninstall()
    train_seconds, validation_seconds, best = (progress["train_seconds"], progress["validation_seconds"],
                                               progress["best"])

    # ---- test the best checkpoint, exactly as evaluate.py would load it
    best_model = load_checkpoint(best_dir, device).model
    test = evaluate(best_model, eval_loader(datasets["test"], tcfg.eval_batch_size, **loader_kwargs),
                    device, mixed_precision, label_names)
    for name in ("accuracy", "macro_f1"):
        writer.add_scalar(f"test/{name}", test[name], step)
    writer.close()
    metrics = {"best_validation": best, "test": {k: test[k] for k in ("loss", "accuracy", "macro_f1", "weighted_f1")},
               "test_per_class": test["per_class"], "history": history, "labels": label_names,
               "train_seconds": round(train_seconds, 1), "validation_seconds": round(validation_seconds, 1),
               "steps": step, "skipped_steps": progress["skipped_steps"],
               # samples/s of the optimisation steps alone (validation excluded):
               "train_samples_per_second": round(step * tcfg.batch_size / (train_seconds - validation_seconds), 1)}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    print(f"test (best epoch {best['epoch']}): accuracy {test['accuracy']:.4f} macro-F1 {test['macro_f1']:.4f}; "
          f"trained {train_seconds:.0f}s; wrote {run_dir / 'metrics.json'}")
    return best[tcfg.monitor]


def resume_directory(resume, last_dir: Path):
    """trainer.resume: null (fresh run), auto (this run's checkpoints/last if present), or a path
    to a `last` checkpoint or to the run directory holding it."""
    last = existing_checkpoint_dir(last_dir)
    if resume is None:
        if last.exists():
            raise UserError(f"{last} exists: pass trainer.resume=auto to continue that run, or use "
                            "another hydra.run.dir (starting over would overwrite it)")
        return None
    if resume == "auto":
        return last if last.exists() else None
    path = existing_checkpoint_dir(Path(resume))
    if (path / "checkpoints" / "last").exists():
        path = existing_checkpoint_dir(path / "checkpoints" / "last")
    if not path.is_dir():
        raise UserError(f"trainer.resume={resume}: no such checkpoint directory")
    return path


def resume_command(run_dir: Path) -> str:
    """The overrides of this run, pinned to its directory, with trainer.resume=auto."""
    kept = [o for o in HydraConfig.get().overrides.task
            if not o.startswith(("hydra.run.dir=", "trainer.resume="))]
    return " ".join([*kept, f"hydra.run.dir={run_dir}", "trainer.resume=auto"])


if __name__ == "__main__":
    check_overrides("config")
    main()
