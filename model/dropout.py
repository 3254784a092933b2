"""Dropout with a cheaper CPU mask than torch's.

On CPU, torch draws a dropout mask with bernoulli_, one call into the Mersenne Twister per element: a
sizeable share of a MiniLM training step (profiled in BENCHMARKS.md → Training throughput). This draws a quarter as many 64-bit random
integers and reads each as four 16-bit ones: an element is dropped when its 16-bit number falls
below round(p * 65536), so p = 0.1 drops with probability 6554/65536 = 0.1000061. Kept elements are
scaled by 1/(1-p) in the input's dtype, as torch's dropout does. The numbers come from torch's
default generator, so seeding, per-rank seeds and the RNG state saved in checkpoints cover them.
On CUDA (Philox, already fast) and with `fast = False` (model.fast_dropout=false) it is torch's own.
"""
import torch
import torch.nn.functional as F
from torch import nn

_INT64_RANGE = (-2 ** 63, 2 ** 63 - 1)


def keep_mask(shape: torch.Size, p: float, device) -> torch.Tensor:
    """bool tensor of `shape`, True with probability 1 - round(p * 65536) / 65536."""
    n = shape.numel()
    bits = torch.randint(*_INT64_RANGE, ((n + 3) // 4,), dtype=torch.int64, device=device)
    return bits.view(torch.int16)[:n].view(shape) >= round(p * 65536) - 32768


def uses_fast_mask(x: torch.Tensor, p: float, training: bool, fast: bool) -> bool:
    return training and p > 0.0 and fast and x.device.type == "cpu"


def dropout(x: torch.Tensor, p: float, training: bool, fast: bool = True) -> torch.Tensor:
    if uses_fast_mask(x, p, training, fast):
        return x * keep_mask(x.shape, p, x.device).to(x.dtype).div_(1 - p)
    return F.dropout(x, p, training) if p > 0.0 else x


class Dropout(nn.Module):
    """nn.Dropout with the cheaper CPU mask; no parameters, so checkpoints are unchanged."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability {p} is not in [0, 1)")
        self.p, self.fast = p, True

    def forward(self, x):
        return dropout(x, self.p, self.training, self.fast)

    def uses_fast_mask(self, x) -> bool:
        return uses_fast_mask(x, self.p, self.training, self.fast)

    def extra_repr(self) -> str:
        return f"p={self.p}, fast={self.fast}"


def use_fast_dropout(model: nn.Module, fast: bool):
    """model.fast_dropout for every Dropout of `model`: the cheaper CPU mask, or torch's own dropout."""
    for module in model.modules():
        if isinstance(module, Dropout):
            module.fast = fast
