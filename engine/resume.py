"""Everything besides the weights that an exact resume needs, stored without pickle.

Tensors (optimizer moments, torch RNG states) go to `training_state.safetensors`; the rest (step,
position in the epoch, best-so-far, python/numpy RNG, schedule) to `training_state.json`.
Batch order needs no state: the sampler derives each epoch's order from (seed, epoch), so resuming
at batch k of epoch e skips straight to it without reading the k batches before it. DataLoader
workers draw no random numbers (collation is deterministic), so they have no RNG state to keep.
"""
import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from common.errors import UserError

STATE_TENSORS, STATE_JSON = "training_state.safetensors", "training_state.json"


def rng_state() -> dict:
    """This process's random number generators (each data-parallel process has its own)."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}


def write_training_state(directory: Path, optimizer, scheduler, progress: dict, rng_states: list[dict]):
    """`rng_states`: rng_state() of every process, in rank order."""
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


def read_training_state(directory: Path, optimizer, scheduler, rank: int = 0) -> dict:
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
    optimizer.load_state_dict({"state": state, "param_groups": groups})
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
    return meta["progress"]
