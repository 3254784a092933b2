"""Training throughput of one process against torchrun with N processes, on the same machine and recipe.

    python benchmarks/ddp_throughput.py                        # tweets, 120 steps, 1 vs 2 processes, 3 repeats
    python benchmarks/ddp_throughput.py --steps 200 --repeats 5 --processes 2 --threads 2

Each run is `python train.py` (or `torchrun --nproc_per_node=N train.py`) in a fresh process, single and
multi alternated A/B/A/B so drift of the shared machine hits both alike. Both train the same global batch
(trainer.batch_size) for the same optimizer steps; the single process gets every thread
(trainer.threads=--threads), each of the N processes --threads/N (OMP_NUM_THREADS, as torchrun sets it),
so the comparison is the same cores used two ways. The figure is train.py's own train_samples_per_second
from metrics.json: examples / training seconds, validation excluded, the first steps included on both sides.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run(processes: int, args, run_dir: Path) -> float:
    overrides = [f"data={args.data}", f"trainer.max_steps={args.steps}", f"trainer.batch_size={args.batch_size}",
                 "trainer.analysis=false", f"hydra.run.dir={run_dir}", *args.override]
    env = dict(os.environ)
    if processes == 1:
        command = [sys.executable, "train.py", f"trainer.threads={args.threads}", *overrides]
    else:
        env["OMP_NUM_THREADS"] = str(max(1, args.threads // processes))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   "train.py", *overrides]
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads((run_dir / "metrics.json").read_text())["train_samples_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="tweets")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--override", nargs="*", default=[], help="extra train.py overrides for both sides")
    args = parser.parse_args()
    if args.processes < 2:
        parser.error("--processes must be 2 or more (it is compared with 1)")

    rates = {1: [], args.processes: []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for processes in rates:
                rate = run(processes, args, Path(scratch) / f"{processes}-{repeat}")
                rates[processes].append(rate)
                print(f"repeat {repeat}: {processes} process(es): {rate:.1f} samples/s", flush=True)

    single, multi = (statistics.median(rates[p]) for p in rates)
    print(f"\n{args.data}, global batch {args.batch_size}, {args.steps} steps, {args.threads} threads in all, "
          f"median of {args.repeats}:")
    print("| processes | threads each | samples/s | vs 1 process |\n|---:|---:|---:|---:|")
    print(f"| 1 | {args.threads} | {single:.1f} | 1.00 |")
    print(f"| {args.processes} | {max(1, args.threads // args.processes)} | {multi:.1f} | {multi / single:.2f} |")


if __name__ == "__main__":
    main()
