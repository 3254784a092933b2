"""The training loop: optimizer steps over epochs, a validation after each (and every val_every_steps)
that keeps the best checkpoint, and the resumable `checkpoints/last`. A stop request (SIGINT/SIGTERM)
saves and ends it at a step boundary; a non-finite gradient never reaches the weights; early stopping
(trainer.patience) ends it after a validation.

    fit(run, progress)                     what train.py calls
      train_one_epoch(run, progress, e)    steps; logs; saves checkpoints/last every save_every_steps;
                                           validates every val_every_steps
        train_step(...)                    one optimizer step over this process's micro-batches
      validate(run, progress, e)           rank 0 evaluates, every rank takes its verdict; best saved
      save_last(run, progress, e + 1, 0)

Host syncs per step: the non-finite check (free on CPU) and, under DDP, the stop flag; the loss and
grad-norm readout every `log_every` steps.
"""
import contextlib
import math
import signal
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import torch
from tqdm import tqdm

from common.errors import UserError
from data.tokenizer import Tokenizer
from evaluation.analysis import log_analysis
from training.distributed import Distributed, NullWriter, any_rank, gather_to_main, mean_over_ranks, share_from_main
from evaluation.scoring import score_outputs, validation_decision
from inference.batches import predict_outputs
from training.objective import Objective
from training.optim import clip_gradients
from training.resume import TrainingProgress, rng_state, save_resumable
from training.signals import StopRequest
from training.tracking import MONITORS
from model.checkpoint import ClassifierInfo, existing_checkpoint_dir, save_checkpoint, with_decision


@dataclass
class Checkpoints:
    """What the loop saves and where: the best validation epoch's classifier and the resumable last state."""
    best_dir: Path
    last_dir: Path
    info: ClassifierInfo
    tokenizer: Tokenizer
    config_yaml: str  # the resolved run config, stored beside the weights
    identity: dict | None = None  # what the run is, for resume's checks (training/run_identity.py)


@dataclass(kw_only=True)
class Training:
    """Everything the loop works with, by name: what is trained, what it reads, where it writes. `cfg` is the trainer config group; `forward` is the model as
    called in training (DDP-wrapped and/or compiled), `model` the plain module that is saved."""
    cfg: object
    model: torch.nn.Module
    forward: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader | None
    label_names: list[str]
    device: torch.device
    mixed_precision: object  # autocast context (or a null context for fp32)
    total_steps: int
    checkpoints: Checkpoints | None = None  # None: nothing is saved (the throughput benchmark)
    writer: object = field(default_factory=NullWriter)
    ddp: Distributed = field(default_factory=Distributed)
    no_sync: object = contextlib.nullcontext  # DDP's: skip the gradient all-reduce of a micro-batch
    val_texts: list[str] | None = None  # for the highest-loss tables (trainer.analysis)
    objective: Objective = field(default_factory=Objective)
    lr_groups: dict[str, int] | None = None  # TensorBoard name -> optimizer group index (optim.layer_decay)

    def __post_init__(self):
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)

    @property
    def epochs(self) -> int:  # max_steps may end training inside the last one
        return math.ceil(self.total_steps / self.steps_per_epoch)


class TrainingStopped(Exception):
    """A stop request ended training after a step; checkpoints/last holds the state after it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def fit(run: Training, progress: TrainingProgress) -> TrainingProgress:
    """Trains from `progress` (fresh, or read from checkpoints/last) to run.total_steps."""
    progress.running_loss = torch.tensor(float(progress.running_loss), device=run.device)
    progress.start_clock()
    stop = StopRequest()
    try:
        for epoch in range(progress.epoch, run.epochs):
            if progress.stopped_early:  # resumed after early stopping had ended the run: nothing left to do
                break
            if train_one_epoch(run, progress, epoch, stop):
                break  # stopped early at a validation inside the epoch; checkpoints/last saved there
            validate(run, progress, epoch)
            save_last(run, progress, epoch + 1, 0)
    finally:
        stop.uninstall()  # a multirun starts the next job in this process
    return progress


def train_one_epoch(run: Training, progress: TrainingProgress, epoch: int, stop: StopRequest | None = None) -> bool:
    """Returns True when early stopping ended training at a validation inside the epoch."""
    first_batch = progress.batch_in_epoch if epoch == progress.epoch else 0
    run.train_loader.batch_sampler.set_epoch(epoch, first_batch)  # jumps to the step, reads nothing before it
    run.model.train()
    epoch_steps = min(run.steps_per_epoch - first_batch, run.total_steps - progress.step)
    progress_bar = tqdm(islice(run.train_loader, epoch_steps), desc=f"epoch {epoch + 1}", total=epoch_steps,
                        dynamic_ncols=True, disable=not run.ddp.is_main)
    for batch_index, micro_batches in enumerate(progress_bar, start=first_batch + 1):
        loss, grad_norm, finite = checked_step(run, progress, micro_batches)
        progress.step += 1
        record_step(run, progress, loss, grad_norm, finite, progress_bar)
        stopping = any_rank(run.ddp, bool(stop), run.device)  # all ranks stop after the same step
        save_every, val_every = run.cfg.save_every_steps, run.cfg.val_every_steps
        # Inside the epoch only: its last step is followed by the epoch's own validation anyway.
        if val_every and progress.step % val_every == 0 and batch_index < first_batch + epoch_steps:
            validate(run, progress, epoch)
            run.model.train()
            if progress.stopped_early:
                save_last(run, progress, epoch, batch_index)
                progress_bar.close()
                return True
        if (save_every and progress.step % save_every == 0) or stopping:
            save_last(run, progress, epoch, batch_index)
        if stopping:
            progress_bar.close()
            raise TrainingStopped(stop.signum if stop else signal.SIGTERM)  # else: a peer rank got the signal
    progress_bar.close()
    return False


def checked_step(run: Training, progress: TrainingProgress, micro_batches):
    """train_step, with a non-finite gradient under on_nonfinite=stop turned into the user's one line."""
    try:
        return train_step(run.forward, [b.to(run.device, non_blocking=True) for b in micro_batches],
                          run.optimizer, run.scheduler, run.trainable, run.cfg.max_grad_norm,
                          run.mixed_precision, run.cfg.on_nonfinite, run.no_sync, run.objective,
                          run.cfg.clip_in_optimizer)
    except NonFiniteGradient as e:
        last = existing_checkpoint_dir(run.checkpoints.last_dir)
        kept = f"last good checkpoint: {last}" if last.exists() else "no checkpoint saved yet"
        raise UserError(f"non-finite gradient at step {progress.step + 1} ({e}); weights not updated, {kept}. "
                        "Lower optim.lr or set trainer.on_nonfinite=skip") from None


def record_step(run: Training, progress: TrainingProgress, loss, grad_norm, finite: bool, progress_bar):
    if finite:
        progress.running_loss += loss
        progress.running_count += 1
    else:
        progress.skipped_steps += 1
        run.writer.add_scalar("train/skipped_steps", progress.skipped_steps, progress.step)
    if progress.step % run.cfg.log_every == 0 and progress.running_count:
        mean_loss = mean_over_ranks(run.ddp, progress.running_loss / progress.running_count).item()
        progress.running_loss.zero_()
        progress.running_count = 0
        lr = run.scheduler.get_last_lr()[0]
        run.writer.add_scalar("train/loss", mean_loss, progress.step)
        run.writer.add_scalar("train/lr", lr, progress.step)
        for name, group in (run.lr_groups or {}).items():  # optim.layer_decay: each depth's own rate
            run.writer.add_scalar(f"train/lr_by_depth/{name}", run.scheduler.get_last_lr()[group], progress.step)
        run.writer.add_scalar("train/grad_norm", grad_norm.item(), progress.step)
        progress_bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")


PRINTED = {"loss": "loss", "accuracy": "accuracy", "macro_f1": "macro-F1", "micro_f1": "micro-F1",
           "samples_f1": "samples-F1", "mean_ap": "mAP"}  # the validation line, in this order


def validate(run: Training, progress: TrainingProgress, epoch: int):
    """Rank 0 validates and every rank takes its verdict: one decision about the best checkpoint, and about
    early stopping. Multi-label validation tunes its thresholds on itself (trainer.threshold=null); the
    best checkpoint keeps those of its validation."""
    tcfg, is_main = run.cfg, run.ddp.is_main
    started = progress.elapsed()
    outputs = None
    if is_main:
        logits, _ = predict_outputs(run.model, run.val_loader, run.device, run.mixed_precision)
        labels = run.val_loader.dataset.labels
        outputs = score_outputs(logits, labels, run.label_names, validation_decision(logits, labels, tcfg))
    val = share_from_main(run.ddp, outputs.metrics if is_main else None)
    if tcfg.analysis and is_main:  # confusion image, PR curves, highest-loss table: cheap, from the logits
        log_analysis(run.writer, "val", outputs, run.label_names, run.val_texts, progress.step, tcfg.top_losses)
    progress.validation_seconds += progress.elapsed() - started
    shown = [name for name in MONITORS if name in val]  # multi-label adds micro/samples-F1 and mAP
    for name in [*shown, "ece"] if "ece" in val else shown:  # ece: single-label's calibration error
        run.writer.add_scalar(f"val/{name}", val[name], progress.step)
    progress.history.append({"epoch": epoch + 1, "step": progress.step,
                             "train_seconds": round(progress.elapsed(), 1), **{k: val[k] for k in shown}})
    sign, best = MONITORS[tcfg.monitor], progress.best
    improved = best is None or sign * val[tcfg.monitor] > sign * best[tcfg.monitor]
    # Early stopping counts validations whose gain over the best so far is at most min_delta.
    gained = best is None or sign * (val[tcfg.monitor] - best[tcfg.monitor]) > tcfg.min_delta
    progress.validations_without_gain = 0 if gained else progress.validations_without_gain + 1
    where = f"epoch {epoch + 1}" + (f" step {progress.step}" if tcfg.val_every_steps else "")
    print(f"{where}: val " + " ".join(f"{title} {val[name]:.4f}" for name, title in PRINTED.items() if name in val)
          + ("  (best so far, saved)" if improved else ""))
    if improved:
        progress.best = {**progress.history[-1]}
        if is_main:
            c = run.checkpoints
            save_checkpoint(c.best_dir, run.model, with_decision(c.info, outputs.decision), c.tokenizer,
                            c.config_yaml)
    if tcfg.patience and progress.validations_without_gain >= tcfg.patience:
        progress.stopped_early = (f"early stopping: validation {tcfg.monitor} gained no more than "
                                  f"{tcfg.min_delta:g} over its best ({progress.best[tcfg.monitor]:.4f}, epoch "
                                  f"{progress.best['epoch']}, step {progress.best['step']}) for {tcfg.patience} "
                                  f"validation(s); stopped at step {progress.step}")
        print(progress.stopped_early)


def save_last(run: Training, progress: TrainingProgress, epoch: int, batch_in_epoch: int):
    """The resumable checkpoint of the state after `batch_in_epoch` batches of `epoch` (0-based)."""
    progress.epoch, progress.batch_in_epoch = epoch, batch_in_epoch
    progress.train_seconds = progress.elapsed()
    rng_states = gather_to_main(run.ddp, rng_state())  # every rank's generators, for an exact resume
    if run.ddp.is_main:
        c = run.checkpoints
        save_resumable(c.last_dir, run.model, c.info, c.tokenizer, c.config_yaml, run.optimizer, run.scheduler,
                       progress, rng_states, c.identity)


class NonFiniteGradient(Exception):
    pass


def train_step(forward, micro_batches, optimizer, scheduler, trainable, max_grad_norm, mixed_precision,
               on_nonfinite="stop", no_sync=contextlib.nullcontext, objective: Objective = Objective(),
               clip_in_optimizer=False):
    """One optimizer step over this process's share of the global batch, given as micro-batches:
    forward under autocast, fp32 loss, backward per micro-batch, then clip, step, schedule.

    Each micro-batch's loss is its summed loss (training/objective.py) over the examples of the whole share, so the
    accumulated gradient is the gradient of the share's mean loss, whatever the micro-batch sizes.
    Under DDP, `no_sync` defers the gradient all-reduce to the last micro-batch, whose backward
    averages over processes (equal shares: the mean over the global batch).

    Returns device tensors (mean loss of the share, grad norm) so the caller decides when to pay for a
    host sync. A non-finite gradient norm (NaN/inf loss or overflow) never reaches the weights: the
    step is skipped (`on_nonfinite=skip`, the schedule still advances) or NonFiniteGradient is
    raised. Every process sees the same all-reduced norm, so all take the same branch. Checking it
    costs one host sync per step: free on CPU, a short stall on CUDA."""
    examples = sum(len(batch.labels) for batch in micro_batches)
    loss = 0.0
    for i, batch in enumerate(micro_batches):
        with no_sync() if i < len(micro_batches) - 1 else contextlib.nullcontext():
            with mixed_precision:
                logits = forward(batch.token_ids, batch.valid_length, batch.segment_ids)
            micro_loss = objective.summed_loss(logits, batch.labels) / examples
            micro_loss.backward()
        loss = loss + micro_loss.detach()
    grad_norm = clip_gradients(optimizer, trainable, max_grad_norm, clip_in_optimizer)
    finite = bool(torch.isfinite(grad_norm))
    if finite:
        optimizer.step()
    elif on_nonfinite == "stop":
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteGradient(f"loss {loss.item():.4g}, gradient norm {grad_norm.item():.4g}")
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss, grad_norm, finite
