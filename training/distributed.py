"""Data-parallel training on PyTorch's own runtime: torchrun (or SLURM tasks) + DistributedDataParallel.

One process per device. `torchrun --nproc_per_node=N train.py ...` sets RANK/WORLD_SIZE/LOCAL_RANK;
a SLURM job step of N tasks (`srun`, Hydra's submitit launcher) sets SLURM_PROCID/SLURM_STEP_NUM_TASKS. Without either, everything here is a no-op
and train.py runs as a single process.
"""
import contextlib
import functools
import gc
import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from common.errors import UserError
from inference.runtime import pick_device


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:  # the one process that prints, logs and writes checkpoints
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def launch_env() -> Distributed:
    """This process's place in the launch, from the environment torchrun or srun set (nothing is joined)."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:  # torchrun, or anything that follows its contract
        return Distributed(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if int(env.get("SLURM_STEP_NUM_TASKS", 1)) > 1 and "SLURM_PROCID" in env:  # inside srun, not salloc
        # One task of a SLURM step (srun, Hydra's submitit launcher with tasks_per_node > 1): the
        # rendezvous is the allocation's first node, on a port derived from the job id.
        if "MASTER_ADDR" not in env:
            nodes = env.get("SLURM_JOB_NODELIST", "localhost")
            try:
                env["MASTER_ADDR"] = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True,
                                                    text=True, check=True).stdout.split()[0]
            except (OSError, subprocess.CalledProcessError, IndexError):  # a plain host name needs no expanding
                env["MASTER_ADDR"] = nodes
        env.setdefault("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", 0)) % 40000))
        return Distributed(int(env["SLURM_PROCID"]), int(env["SLURM_STEP_NUM_TASKS"]),
                           int(env.get("SLURM_LOCALID", 0)))
    return Distributed()


def init_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Joins the process group (nccl on CUDA, gloo on CPU) and picks this process's device."""
    ddp = launch_env()
    device = pick_device(device_name)
    if not ddp.active:
        return ddp, device
    if device.type == "cuda":
        device = torch.device("cuda", ddp.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ddp.rank,
                            world_size=ddp.world_size)
    if not ddp.is_main:  # one copy of the log: the other ranks keep stderr for their errors only
        sys.stdout = open(os.devnull, "w")
    return ddp, device


def shutdown():
    """Leaves the process group; called on every exit path so no rank is left waiting on a dead peer."""
    if dist.is_available() and dist.is_initialized():
        # The DDP wrapper and its reducer sit in reference cycles, so they outlive main() until a
        # collection. Left to interpreter exit, objects holding Gloo state can abort the process
        # (SIGABRT, "terminate called without an active exception": seen once on rank 1 in a clean-clone
        # test run; pytorch/pytorch#179291 describes the mechanism). Collect them while all is alive.
        gc.collect()
        dist.destroy_process_group()


def share_from_main(ddp: Distributed, value):
    """Rank 0's value on every rank (run directory, validation metrics): one decision, taken once."""
    if not ddp.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(ddp: Distributed, value) -> list:
    """[value of rank 0, value of rank 1, ...] (every rank receives it; only rank 0 uses it)."""
    if not ddp.active:
        return [value]
    out = [None] * ddp.world_size
    dist.all_gather_object(out, value)
    return out


def mean_over_ranks(ddp: Distributed, tensor: torch.Tensor) -> torch.Tensor:
    if ddp.active:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        tensor /= ddp.world_size
    return tensor


def any_rank(ddp: Distributed, flag: bool, device) -> bool:
    """True on every rank if it is true on one: a SIGTERM seen by one rank stops all at the same step."""
    if not ddp.active:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def wrap_model(ddp: Distributed, model, device):
    """DistributedDataParallel around the model (averages gradients over ranks in backward), and the
    context that skips that averaging for all but the last micro-batch of an accumulated step."""
    if not ddp.active:
        return model, contextlib.nullcontext
    wrapped = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    return wrapped, wrapped.no_sync


def leaves_process_group(main):
    """Decorates an entry point so the process group is left on every exit: return, error, sys.exit."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        finally:
            shutdown()
    return wrapper


class NullWriter:
    """Stands in for the SummaryWriter on ranks other than 0: every logging call is accepted and dropped."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self
