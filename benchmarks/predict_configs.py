"""predict.py's configurations side by side: precision x pack_weights, alternated in one process.

    python benchmarks/predict_configs.py --checkpoint outputs/emotion/.../checkpoints/best
    python benchmarks/predict_configs.py --n 50 --batch-repeats 1       # smoke run

Four Predictors load the same checkpoint: fp32 and bf16, each with torch's nn.Linear
(pack_weights=false) and with oneDNN-prepacked weights (pack_weights=true, model/packed_linear.py).
Single-text latency, p50 and p99 over --n texts: the texts are cut into --rounds blocks, and each
block goes through the four in turn (each after --warmup untimed texts), so a slow stretch of the
shared machine hits all four alike. Batch throughput: all validation texts in batches of --batch,
the four configurations alternated --batch-repeats times, median. Agreement: the share of validation
texts whose predicted label equals fp32 nn.Linear's, and the largest difference in any probability.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # project packages importable

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.inference import DEFAULT_MODEL, emotion_config, percentile, save_untrained_checkpoint  # noqa: E402
from data.readers import read_examples  # noqa: E402
from inference.predictor import Predictor  # noqa: E402
from inference.runtime import configure_cpu  # noqa: E402
from model.checkpoint import load_checkpoint  # noqa: E402

CONFIGS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]  # the first is the reference


def main(a):
    configure_cpu(a.threads)
    data_cfg = emotion_config()
    texts = read_examples(a.data or data_cfg.validation).texts
    with tempfile.TemporaryDirectory(prefix="predict_configs_") as tmp:
        checkpoint = Path(a.checkpoint) if a.checkpoint else save_untrained_checkpoint(
            Path(tmp) / "untrained", DEFAULT_MODEL, list(data_cfg.labels), data_cfg.max_len)
        predictors = {config: Predictor(load_checkpoint(checkpoint, "cpu"), torch.device("cpu"), config[0],
                                        a.batch, pack_weights=config[1])
                      for config in CONFIGS}

    latencies = {config: [] for config in CONFIGS}
    for block in np.array_split(np.arange(a.n), a.rounds):
        for config, predictor in predictors.items():
            for text in texts[:a.warmup]:  # the other configurations' weights have just filled the caches
                predictor.probabilities([text])
            for i in block:
                t0 = time.perf_counter()
                predictor.probabilities([texts[i]])
                latencies[config].append((time.perf_counter() - t0) * 1e3)

    batch_seconds, probabilities = {config: [] for config in CONFIGS}, {}
    for _ in range(a.batch_repeats):
        for config, predictor in predictors.items():
            t0 = time.perf_counter()
            probabilities[config] = predictor.probabilities(texts)
            batch_seconds[config].append(time.perf_counter() - t0)

    reference = probabilities[CONFIGS[0]]
    print(f"\n{a.checkpoint or 'untrained head on the default encoder'}; {len(texts)} texts of "
          f"{a.data or data_cfg.validation}; {torch.get_num_threads()} threads; single texts: {a.n} in "
          f"{a.rounds} rounds, {a.warmup} warm-up each; batches of {a.batch}, median of {a.batch_repeats}\n")
    print("| precision | pack_weights | single p50 ms | single p99 ms | batch texts/s | same label as fp32 nn.Linear "
          "| max probability difference |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for config in CONFIGS:
        same = float(np.mean(probabilities[config].argmax(1) == reference.argmax(1)))
        print(f"| {config[0]} | {str(config[1]).lower()} | {percentile(latencies[config], .5):.2f} "
              f"| {percentile(latencies[config], .99):.2f} "
              f"| {len(texts) / statistics.median(batch_seconds[config]):.1f} | {same:.2%} "
              f"| {np.abs(probabilities[config] - reference).max():.1e} |")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="checkpoint directory; default: untrained head on the default encoder")
    p.add_argument("--data", help="JSONL with text and label fields; default: emotion validation split")
    p.add_argument("--n", type=int, default=200, help="single texts timed per configuration")
    p.add_argument("--warmup", type=int, default=20, help="untimed texts before each block")
    p.add_argument("--rounds", type=int, default=4, help="blocks the timed texts are cut into")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batch-repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    return p.parse_args()


if __name__ == "__main__":
    main(parse_args())
