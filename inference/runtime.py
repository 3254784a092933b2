"""Device, precision and seeding: the few environment decisions every entry script makes."""
import contextlib
import ctypes
import os
import random

import numpy as np
import torch

from common.errors import UserError

# No fp16: without loss scaling (a GradScaler, not implemented) its gradients underflow. GPUs
# without bf16 train in fp32.
PRECISIONS = ("bf16", "fp32")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"trainer.device={name!r} but no CUDA device is visible")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    """Mixed precision for matmuls: on CPUs with bf16 instructions (AVX-512 bf16, AMX) a bf16 matmul is
    much faster than fp32 (the peaks measured here: BENCHMARKS.md → Training throughput)."""
    if precision not in PRECISIONS:
        raise UserError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def configure_cpu(threads):
    """Threads: `threads`, else OMP_NUM_THREADS, else all cores this process may use (torch's default
    can exceed our share).

    Memory: glibc hands allocations above 32 MiB (the word-embedding gradient is 47 MB) straight
    to mmap and back to the kernel on free, so every training step page-faults them in again.
    Serving everything from the heap and never trimming it keeps that memory mapped; results are
    unchanged. The gain measured here is within noise (BENCHMARKS.md → Training throughput); kept as the
    cheap half of what PyTorch's CPU guides do with jemalloc/tcmalloc.
    """
    # OMP_NUM_THREADS, when set, is a launcher's share for this process (torchrun: 1; Hydra's joblib
    # launcher: cores / jobs), so jobs running side by side do not oversubscribe the cores.
    default = int(os.environ.get("OMP_NUM_THREADS") or 0) or len(os.sched_getaffinity(0))
    torch.set_num_threads(int(threads) if threads else default)
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
