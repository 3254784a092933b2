"""Device, precision and seeding: the few environment decisions every entry script makes."""
import contextlib
import os
import random

import numpy as np
import torch

from engine.errors import UserError

PRECISIONS = ("bf16", "fp16", "fp32")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"trainer.device={name!r} but no CUDA device is visible")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    """Mixed precision for matmuls: bf16 runs ~4x faster than fp32 on CPUs with AVX-512 bf16."""
    if precision not in PRECISIONS:
        raise UserError(f"trainer.precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise UserError("trainer.precision=fp16 needs a CUDA device (use bf16 on CPU)")
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def set_threads(threads):
    """Default: all cores this process may use (torch's own default can exceed the cgroup's share)."""
    torch.set_num_threads(int(threads) if threads else len(os.sched_getaffinity(0)))


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
