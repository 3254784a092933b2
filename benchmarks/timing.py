"""The clock the attention benchmarks share: median seconds of a step after one warm-up call, with CUDA's
asynchronous kernels waited for on both sides of the clock."""
import statistics
import time

import torch


def median_seconds(step, device: torch.device, repeats: int) -> float:
    step()  # warm-up: allocator, kernel selection
    seconds = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)
