"""Fine-tune a BERT-family encoder for text classification.

    python train.py                                  # all-MiniLM-L6-v2 on the embedded tweets
    python train.py data=emotion optim.lr=5e-5 trainer.max_epochs=2
    python train.py -m optim.lr=1e-4,5e-5 model.dropout=0.1,0.5   # Hydra multirun sweep
    torchrun --nproc_per_node=2 train.py data=emotion             # data-parallel (DDP), same global batch

The run directory (printed at start) receives metrics.json, checkpoints/best/ and TensorBoard events.
"""
import json
import math
import signal
import sys
import time
from itertools import islice
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

import common.config  # noqa: F401  (registers the ${package_file:} and ${project_root:} resolvers)
from data.build import build_datasets, read_split
from data.tokenizer import load_tokenizer
from data.transform import BERTSentenceTransform
from common.cli import check_overrides
from engine.build import NonFiniteGradient, build_model, build_optimization, build_train_loader, train_step
from engine.distributed import (NullWriter, any_rank, gather_to_main, init_distributed, leaves_process_group,
                                mean_over_ranks, share_from_main, wrap_model)
from common.errors import UserError, exit_on_user_error
from engine.analysis import display_texts, log_analysis, write_analysis
from engine.evaluation import evaluate, evaluate_with_outputs
from engine.inference import eval_loader
from engine.runtime import autocast, seed_everything, configure_cpu
from engine.resume import read_training_state, rng_state, write_training_state
from engine.signals import StopRequest
from engine.tracking import MONITORS, log_hparams
from model.checkpoint import (ClassifierInfo, existing_checkpoint_dir, load_checkpoint, load_weights,
                              save_checkpoint)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
@exit_on_user_error
@leaves_process_group
def main(cfg: DictConfig) -> float:
    tcfg = cfg.trainer
    if tcfg.monitor not in MONITORS:
        raise UserError(f"trainer.monitor={tcfg.monitor!r} is not one of {', '.join(MONITORS)}")
    if tcfg.on_nonfinite not in ("stop", "skip"):
        raise UserError(f"trainer.on_nonfinite={tcfg.on_nonfinite!r} is not one of stop, skip")
    configure_cpu(tcfg.threads)
    seed_everything(cfg.seed)
    # Under torchrun: one process per device; rank 0 prints, logs and writes, in its run directory.
    ddp, device = init_distributed(tcfg.device)
    run_dir = Path(share_from_main(ddp, HydraConfig.get().runtime.output_dir))
    mixed_precision = autocast(device, tcfg.precision)
    print(f"run directory: {run_dir}")

    # ---- data: tokenized once, batched by similar length, padded per batch
    tokenizer = load_tokenizer(cfg.model.path)
    transform = BERTSentenceTransform(tokenizer, cfg.data.max_len, pair=bool(cfg.data.text_b_column))
    datasets, label_names, data_stats = build_datasets(cfg.data, transform)
    for split, stats in data_stats.items():
        print(f"{split:>10}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    train_loader = build_train_loader(cfg, datasets["train"], ddp, device)
    loader_kwargs = {"num_workers": tcfg.num_workers, "pin_memory": device.type == "cuda"}
    val_loader = eval_loader(datasets["validation"], tcfg.eval_batch_size, **loader_kwargs)
    # The validation texts, for the highest-loss tables: datasets keep token ids only.
    val_texts = display_texts(read_split(cfg.data, "validation")) if tcfg.analysis and ddp.is_main else None

    # ---- model, optimizer, schedule
    model = build_model(cfg, len(label_names), device)
    seed_everything(cfg.seed + ddp.rank)  # same initial weights everywhere, different dropout masks per rank
    steps_per_epoch = len(train_loader)
    total_steps = tcfg.max_epochs * steps_per_epoch
    if tcfg.max_steps:
        total_steps = min(total_steps, tcfg.max_steps)
    optimizer, scheduler, warmup_steps = build_optimization(cfg, model, total_steps)
    parallel_model, no_sync = wrap_model(ddp, model, device)  # DDP averages gradients over processes
    forward = torch.compile(parallel_model) if tcfg.compile else parallel_model
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"{sum(p.numel() for p in trainable) / 1e6:.1f}M trainable parameters, {total_steps} steps "
          f"({steps_per_epoch}/epoch) of {tcfg.batch_size} examples = {ddp.world_size} process(es) x "
          f"{tcfg.grad_accum_steps} micro-batch(es), warmup {warmup_steps}, {tcfg.precision} on {device}")

    # ---- resume: weights, optimizer, schedule, RNG and position in the epoch, from checkpoints/last
    best_dir, last_dir = run_dir / "checkpoints" / "best", run_dir / "checkpoints" / "last"
    progress = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best": None, "history": [], "skipped_steps": 0,
                "train_seconds": 0.0, "validation_seconds": 0.0, "running_loss": 0.0, "running_count": 0}
    resume_dir = resume_directory(tcfg.resume, last_dir)
    if resume_dir is not None:
        load_weights(resume_dir, model)
        progress = read_training_state(resume_dir, optimizer, scheduler, ddp.rank)
        print(f"resumed from {resume_dir} at step {progress['step']} "
              f"(epoch {progress['epoch'] + 1}, batch {progress['batch_in_epoch']})")

    # ---- the loop: one optimizer step per global batch (this process's share, in micro-batches).
    # Host syncs: the non-finite check each step (free on CPU), under DDP the stop flag, and the
    # loss/grad-norm readout every log_every steps.
    # purge_step drops events logged after the checkpoint we resumed from: curves continue, no duplicates.
    writer = (SummaryWriter(str(run_dir / "tensorboard"), purge_step=progress["step"] + 1 if resume_dir else None)
              if ddp.is_main else NullWriter())
    info = ClassifierInfo(label_names, cfg.model.pooling, cfg.data.max_len, transform.pair, cfg.model.dropout)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    sign = MONITORS[tcfg.monitor]
    stop = StopRequest()

    def save_last(epoch: int, batch_in_epoch: int):
        """Resumable checkpoint of the state after `batch_in_epoch` batches of `epoch` (0-based)."""
        progress.update(step=step, epoch=epoch, batch_in_epoch=batch_in_epoch, running_loss=running_loss.item(),
                        train_seconds=time.perf_counter() - session_start)
        rng_states = gather_to_main(ddp, rng_state())  # every rank's generators, for an exact resume
        if ddp.is_main:
            save_checkpoint(last_dir, model, info, tokenizer, config_yaml,
                            lambda tmp: write_training_state(tmp, optimizer, scheduler, progress, rng_states))

    step, history = progress["step"], progress["history"]
    running_loss = torch.tensor(progress["running_loss"], device=device)
    session_start = time.perf_counter() - progress["train_seconds"]
    for epoch in range(progress["epoch"], math.ceil(total_steps / steps_per_epoch)):
        first_batch = progress["batch_in_epoch"] if epoch == progress["epoch"] else 0
        train_loader.batch_sampler.set_epoch(epoch, first_batch)  # jumps to the step, reads nothing before it
        model.train()
        epoch_steps = min(steps_per_epoch - first_batch, total_steps - step)  # max_steps may cut the last epoch
        progress_bar = tqdm(islice(train_loader, epoch_steps), desc=f"epoch {epoch + 1}", total=epoch_steps,
                            dynamic_ncols=True, disable=not ddp.is_main)
        for batch_index, micro_batches in enumerate(progress_bar, start=first_batch + 1):
            try:
                loss, grad_norm, finite = train_step(forward, [b.to(device, non_blocking=True) for b in micro_batches],
                                                     optimizer, scheduler, trainable, tcfg.max_grad_norm,
                                                     mixed_precision, tcfg.on_nonfinite, no_sync)
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
                mean_loss = mean_over_ranks(ddp, running_loss / progress["running_count"]).item()
                running_loss.zero_()
                progress["running_count"] = 0
                writer.add_scalar("train/loss", mean_loss, step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                writer.add_scalar("train/grad_norm", grad_norm.item(), step)
                progress_bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            stopping = any_rank(ddp, bool(stop), device)  # all ranks stop after the same step
            if (tcfg.save_every_steps and step % tcfg.save_every_steps == 0) or stopping:
                save_last(epoch, batch_index)
            if stopping:
                progress_bar.close()
                writer.close()
                signum = stop.signum if stop else signal.SIGTERM  # this rank's peer got the signal
                if ddp.is_main:
                    print(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint saved to "
                          f"{last_dir}.\nresume with: {resume_command(run_dir, ddp)}", file=sys.stderr)
                sys.exit(128 + signum)
        progress_bar.close()

        # Rank 0 validates and every rank takes its verdict: one decision about the best checkpoint.
        validation_start = time.perf_counter()
        val_outputs = (evaluate_with_outputs(model, val_loader, device, mixed_precision, label_names)
                       if ddp.is_main else None)
        val = share_from_main(ddp, val_outputs.metrics if ddp.is_main else None)
        if tcfg.analysis and ddp.is_main:  # confusion image, PR curves, highest-loss table: cheap, from the logits
            log_analysis(writer, "val", val_outputs, label_names, val_texts, step, tcfg.top_losses)
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
            if ddp.is_main:
                save_checkpoint(best_dir, model, info, tokenizer, config_yaml)
        save_last(epoch + 1, 0)
    stop.uninstall()
    train_seconds, validation_seconds, best = (progress["train_seconds"], progress["validation_seconds"],
                                               progress["best"])
    if not ddp.is_main:
        return best[tcfg.monitor]

    # ---- test the best checkpoint, exactly as evaluate.py would load it
    best_model = load_checkpoint(best_dir, device).model
    test = evaluate(best_model, eval_loader(datasets["test"], tcfg.eval_batch_size, **loader_kwargs),
                    device, mixed_precision, label_names)
    log_hparams(writer, cfg, best, test, step)  # test/* scalars + the HParams entry of this run
    if tcfg.analysis:  # the best checkpoint's validation errors and sentence vectors (one more validation pass)
        best_val = evaluate_with_outputs(best_model, val_loader, device, mixed_precision, label_names,
                                         with_vectors=True)
        write_analysis(run_dir / "analysis", writer, "best_validation", best_val, label_names, val_texts, step,
                       tcfg.top_losses, tcfg.projector_max_examples)
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


def resume_command(run_dir: Path, ddp) -> str:
    """This run's launch command and overrides, pinned to its directory, with trainer.resume=auto."""
    kept = [o for o in HydraConfig.get().overrides.task
            if not o.startswith(("hydra.run.dir=", "trainer.resume="))]
    launcher = f"torchrun --nproc_per_node={ddp.world_size} train.py" if ddp.active else "python train.py"
    return " ".join([launcher, *kept, f"hydra.run.dir={run_dir}", "trainer.resume=auto"])


if __name__ == "__main__":
    check_overrides("config")
    main()
