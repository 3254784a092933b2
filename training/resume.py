"""Everything besides the weights that an exact resume needs, stored without pickle.

Tensors (optimizer moments, torch RNG states) go to `training_state.safetensors`; the rest (step,
position in the epoch, best-so-far, python/numpy RNG, schedule) to `training_state.json`.
Batch order needs no state: the sampler derives each epoch's order from (seed, epoch), so resuming
at batch k of epoch e skips straight to it without reading the k batches before it. DataLoader
workers draw no random numbers (collation is deterministic), so they have no RNG state to keep.
"""
import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from common.errors import UserError
from model.checkpoint import existing_checkpoint_dir, save_checkpoint
from training.run_identity import write_identity

STATE_TENSORS, STATE_JSON = "training_state.safetensors", "training_state.json"


@dataclass
class TrainingProgress:
    """Where training stands: what `checkpoints/last` records besides weights, optimizer and RNG.
    `epoch`/`batch_in_epoch` say where to continue: after `batch_in_epoch` batches of `epoch` (0-based)."""
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: dict | None = None  # the history entry of the best validation epoch so far
    history: list = field(default_factory=list)  # one entry per validated epoch
    skipped_steps: int = 0  # non-finite steps skipped (trainer.on_nonfinite=skip)
    validations_without_gain: int = 0  # early stopping's count (trainer.patience, min_delta)
    stopped_early: str | None = None  # why early stopping ended the run, once it has
    train_seconds: float = 0.0  # training time so far, over every session of a resumed run
    validation_seconds: float = 0.0
    # The loss summed since the last log line, and over how many steps: a resume logs the same means.
    # While training it is a device tensor, so that adding to it costs no host sync.
    running_loss: float | torch.Tensor = 0.0
    running_count: int = 0

    def start_clock(self):
        """Training time counts from here, on top of the seconds earlier sessions trained."""
        self._clock_origin = time.perf_counter() - self.train_seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self._clock_origin

    def to_dict(self) -> dict:
        return {**asdict(self), "running_loss": float(self.running_loss)}


def rng_state() -> dict:
    """This process's random number generators (each data-parallel process has its own)."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}


def save_resumable(directory: Path, model, info, tokenizer, config_yaml: str, optimizer, scheduler,
                   progress: TrainingProgress, rng_states: list[dict], identity: dict | None = None):
    """checkpoints/last: the classifier checkpoint plus the training state and the run's identity
    (training/run_identity.py), written in one atomic save. `rng_states`: rng_state() of every process,
    in rank order."""
    state = progress.to_dict()

    def write_state(tmp):
        write_training_state(tmp, optimizer, scheduler, state, rng_states)
        if identity is not None:
            write_identity(tmp, identity)

    save_checkpoint(directory, model, info, tokenizer, config_yaml, write_state)


def write_training_state(directory: Path, optimizer, scheduler, progress: dict, rng_states: list[dict]):
    tensors, optimizer_state = {}, optimizer.state_dict()
    for index, state in optimizer_state["state"].items():
        for name, value in state.items():
            tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
    for rank, rng in enumerate(rng_states):
        tensors[f"rng.{rank}.torch"] = rng["torch"]
        for i, state in enumerate(rng["cuda"]):
            tensors[f"rng.{rank}.cuda.{i}"] = state
    save_file(tensors, str(directory / STATE_TENSORS))
    meta = {
        "progress": progress,
        "optimizer_param_groups": optimizer_state["param_groups"],
        "scheduler": scheduler.state_dict(),
        "rng": [{"python": rng["python"], "numpy": rng["numpy"]} for rng in rng_states],
    }
    (directory / STATE_JSON).write_text(json.dumps(meta))


def read_training_state(directory: Path, optimizer, scheduler, rank: int = 0) -> TrainingProgress:
    """Restores optimizer, schedule and this rank's RNG states in place; returns the saved progress.
    A rank the checkpoint has no RNG state for (resumed on more processes) keeps its fresh seed."""
    for name in (STATE_TENSORS, STATE_JSON):
        if not (directory / name).is_file():
            raise UserError(f"{directory}: cannot resume, {name} is missing (only checkpoints/last is resumable)")
    try:
        tensors = load_file(str(directory / STATE_TENSORS))
        meta = json.loads((directory / STATE_JSON).read_text())
    except Exception as e:  # corrupt safetensors header or JSON
        raise UserError(f"{directory}: unreadable training state ({str(e).splitlines()[0]})") from None
    state = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    groups = meta["optimizer_param_groups"]
    for group in groups:
        group["betas"] = tuple(group["betas"])
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:  # other parameter groups (optim.layer_decay, freezing)
        raise UserError(f"{directory}: the optimizer state does not fit this model's parameter groups "
                        f"({str(e).splitlines()[0]}); resume with the run's optim/model settings") from None
    scheduler.load_state_dict(meta["scheduler"])
    if rank < len(meta["rng"]):
        torch.set_rng_state(tensors[f"rng.{rank}.torch"])
        cuda_states = [tensors[f"rng.{rank}.cuda.{i}"] for i in range(torch.cuda.device_count())
                       if f"rng.{rank}.cuda.{i}" in tensors]
        if cuda_states:
            torch.cuda.set_rng_state_all(cuda_states)
        version, internal, gauss = meta["rng"][rank]["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, *rest = meta["rng"][rank]["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    return TrainingProgress(**meta["progress"])


def optimizer_settings(optimizer, scheduler) -> tuple[list[dict], list[float]]:
    """What a freshly built optimizer and schedule hold from the config: every group's hyperparameters
    and the schedule's peak rates. Read before read_training_state overwrites them."""
    groups = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    return groups, list(scheduler.base_lrs)


def adopt_settings(optimizer, scheduler, settings: tuple[list[dict], list[float]]):
    """After a resume with trainer.resume_changes: the config's optimizer hyperparameters and peak rates
    replace the checkpoint's (which read_training_state restored), and the current rate is the schedule's
    at the resumed step under the new peak. Moments and step counts stay the checkpoint's."""
    groups, base_lrs = settings
    for group, fresh in zip(optimizer.param_groups, groups):
        group.update({k: v for k, v in fresh.items() if k != "lr"})
    scheduler.base_lrs = list(base_lrs)
    for group, base, factor in zip(optimizer.param_groups, base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def recorded_step(directory: Path) -> int:
    """The optimizer step checkpoints/last was saved after (0 when its state cannot be read: read_training_state
    then says why)."""
    try:
        return int(json.loads((directory / STATE_JSON).read_text())["progress"]["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def carry_best_checkpoint(resume_dir: Path, best_dir: Path):
    """A run resumed into another directory (trainer.resume=<run> with a new hydra.run.dir): the best
    checkpoint so far is the old run's, copied here, so the end of the run scores it even when no later
    validation beats it. Copied whole into a temporary sibling, then renamed."""
    if best_dir.exists():
        return
    source = existing_checkpoint_dir(resume_dir.parent / "best")
    if not source.is_dir():
        raise UserError(f"{resume_dir}: no best checkpoint beside it ({source}), though the run has validated; "
                        "resume from the whole run directory")
    tmp = best_dir.with_name(f".{best_dir.name}.tmp-{os.getpid()}")
    try:
        shutil.copytree(source, tmp)
        os.replace(tmp, best_dir)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot copy {source} to {best_dir} ({e.strerror or e})") from None


def check_trimmed_vocabulary(directory: Path, tokenizer):
    """model.trim_vocab trims the vocabulary to the training split again on resume. Another split gives
    other pieces: their rows would fail to load with a bare shape error or, as many as before, load
    silently under the wrong pieces."""
    saved = directory / "tokenizer.json"
    if saved.is_file() and saved.read_text(encoding="utf-8") != tokenizer.spec_text:
        raise UserError(f"{directory}: the training split no longer gives the vocabulary this run was trimmed to "
                        "(model.trim_vocab): resume with the same data, or start a fresh run")


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


def resume_command(run_dir: Path, world_size: int) -> str:
    """This run's launch command and overrides, pinned to its directory, with trainer.resume=auto."""
    from hydra.core.hydra_config import HydraConfig

    given = HydraConfig.get().overrides.task if HydraConfig.initialized() else []  # none: called in process
    kept = [o for o in given if not o.startswith(("hydra.run.dir=", "trainer.resume="))]
    launcher = f"torchrun --nproc_per_node={world_size} train.py" if world_size > 1 else "python train.py"
    return " ".join([launcher, *kept, f"hydra.run.dir={run_dir}", "trainer.resume=auto"])
