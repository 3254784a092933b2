"""Where one training step's time goes: torch.profiler over our loop, operators grouped by kind.

    python benchmarks/train_profile.py --data emotion --precision bf16        # 30 steps after 10 warm-up
    python benchmarks/train_profile.py --data tweets --override trainer.compile=true

The run is built exactly as benchmarks/train_throughput.py builds its `ours` worker (train.py's
builders, the loop's own train_one_epoch); the profiler records the steps after `--warmup`.
Each operator's *self* CPU time (time inside it, not inside the operators it calls) is summed by
kind. The profiler's step marker encloses each whole step, so its own self time is what ran between
operators: Python, autograd-engine bookkeeping and dispatch ("outside operators"). Profiling adds
its own per-operator cost, so the rate printed is a little below train_throughput.py's.
"""
import argparse
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_throughput, beside this file

import torch  # noqa: E402

from train_throughput import DEFAULT_MODEL, build_ours  # noqa: E402

# First match wins. Names are aten's (and oneDNN's for the packed/compiled paths).
KINDS = [
    ("GEMM", r"^aten::(mm|addmm|bmm|baddbmm|_addmm_activation)$|mkldnn|_linear_pointwise|^mkl::"),
    ("optimizer (AdamW)", r"adamw|_foreach_(add|mul|lerp|addcmul|addcdiv|sqrt|div)"),
    ("gradient clipping", r"vector_norm|_foreach_norm|clip_grad|^aten::stack$"),
    ("dtype casts and copies", r"^aten::(copy_|_to_copy|to|clone|contiguous)$"),
    ("dropout random numbers", r"random_|randint|bernoulli|^aten::ge$"),
    ("softmax", r"softmax"),
    ("layer norm", r"layer_norm"),
    ("GELU", r"gelu"),
    ("embedding lookup and its gradient", r"embedding|index_select|index_add|index_put|scatter"),
    ("other elementwise", r"^aten::(add|add_|mul|mul_|div|div_|sub|masked_fill|where|tanh|tanh_backward|"
                          r"fill_|zero_|sum|neg|exp|log_softmax|_log_softmax|nll_loss|nll_loss_forward|"
                          r"nll_loss_backward|_log_softmax_backward_data|threshold_backward|lt|eq|arange)$"),
    ("step marker", r"^ProfilerStep"),
    ("compiled kernels", r"^(graph_|CompiledFunction|Torch-Compiled|inductor)|CompiledFxGraph"),
]


OUTSIDE = "outside operators (Python, autograd engine, dispatch)"


def kind_of(name: str) -> str:
    for kind, pattern in KINDS:
        if re.search(pattern, name):
            return kind
    return "other operators"


class ProfiledLoader:
    """The training loader with the profiler's step marker on each batch: steps before `warmup` are
    skipped by the profiler's schedule, the next `steps` recorded; the wall clock of those is kept."""

    def __init__(self, loader, profiler, warmup: int):
        self.loader, self.profiler, self.warmup = loader, profiler, warmup
        self.batch_sampler = loader.batch_sampler
        self.served, self.clock_start, self.examples = 0, None, 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for micro_batches in self.loader:
            if self.served:
                self.profiler.step()
            if self.served == self.warmup:
                self.clock_start = time.perf_counter()
            if self.served >= self.warmup:
                self.examples += sum(len(b.labels) for b in micro_batches)
            self.served += 1
            yield micro_batches


def main(a):
    from training.loop import train_one_epoch

    torch.set_num_threads(a.threads)
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                      schedule=torch.profiler.schedule(wait=a.warmup, warmup=0, active=a.steps))
    run, progress = build_ours(a, lambda loader, device: ProfiledLoader(loader, profiler, a.warmup))
    loader = run.train_loader
    with profiler:
        for epoch in range(run.epochs):
            train_one_epoch(run, progress, epoch)
        wall = time.perf_counter() - loader.clock_start
    report(a, profiler.key_averages(), wall, loader.examples)


def report(a, averages, wall: float, examples: int):
    by_kind, by_op, calls = defaultdict(float), defaultdict(float), defaultdict(int)
    for event in averages:
        if event.self_cpu_time_total <= 0:
            continue
        seconds = event.self_cpu_time_total / 1e6
        by_kind[kind_of(event.key)] += seconds
        by_op[event.key] += seconds
        calls[event.key] += event.count
    # The step marker's self time is what ran between operators: Python, autograd bookkeeping, dispatch.
    by_kind[OUTSIDE] = by_kind.pop("step marker", 0.0)
    print(f"{a.data}, {a.precision}, {a.threads} threads, overrides {list(a.override) or 'none'}: "
          f"{a.steps} profiled steps, {wall / a.steps * 1e3:.1f} ms per step, {examples / wall:.1f} samples/s "
          f"under the profiler\n")
    print("| kind | ms per step | share of the step |")
    print("|---|---:|---:|")
    for kind, seconds in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {seconds / a.steps * 1e3:.1f} | {seconds / wall:.1%} |")
    print(f"\ntop {a.top} operators by self CPU time\n")
    print("| operator | kind | calls per step | ms per step | share |")
    print("|---|---|---:|---:|---:|")
    for name, seconds in sorted(by_op.items(), key=lambda kv: -kv[1])[:a.top]:
        print(f"| `{name}` | {kind_of(name)} | {calls[name] / a.steps:.0f} | {seconds / a.steps * 1e3:.2f} "
              f"| {seconds / wall:.1%} |")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["tweets", "emotion"], default="emotion")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--steps", type=int, default=30, help="profiled optimizer steps")
    p.add_argument("--warmup", type=int, default=10, help="steps before the profiler starts recording")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=20, help="operators listed one by one")
    p.add_argument("--model", default=DEFAULT_MODEL, help="Hugging Face-format BERT directory")
    p.add_argument("--override", action="append", default=[], help="Hydra override, e.g. trainer.compile=true")
    a = p.parse_args()
    if a.steps < 1 or a.warmup < 1:
        p.error("--steps and --warmup must be at least 1")
    return a


if __name__ == "__main__":
    main(parse_args())
