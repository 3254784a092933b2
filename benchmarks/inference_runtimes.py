"""Our inference paths against the maintained runtimes, in one invocation: torch (nn.Linear, oneDNN-packed,
bf16), torch.compile with weight freezing, ONNX Runtime on our export (plain, with its transformer
fusions, int8), and transformers (../shared/tools/hf_inference.py).

    python benchmarks/inference_runtimes.py --checkpoint multirun/emotion/seeds/0/checkpoints/best
    python benchmarks/inference_runtimes.py --n 20 --warmup 2 --batch-repeats 1 --startup-repeats 1   # smoke run

Every path but transformers is a predictor over the same checkpoint in this process, with our tokenizer
and batching (inference.predictor.Predictor, inference.onnx_predictor.OnnxPredictor):
- single text: --n validation texts cut into --rounds blocks; each block goes through every path in
  turn, each after --warmup untimed texts, so a slow stretch of the machine hits all alike; p50/p99 by
  hf_inference.py's rule (benchmarks/inference.py percentile).
- batch: all validation texts in batches of --batch, once untimed (torch.compile compiles its batch
  shapes there; its probabilities give the agreement), then --batch-repeats alternated passes, median.
- agreement: share of validation texts whose label equals torch fp32 nn.Linear's, and the largest
  difference in any probability.
- load -> first answer: seconds from load_checkpoint to the first text's probabilities, in this process
  (imports done): torch.compile compiles there, ONNX Runtime "cold" exports and fuses there.
- predict.py start-up: to its prompt and to its first answer, fresh processes (benchmarks/inference.py
  time_predict_startup), for runtime=torch and runtime=onnx with the graph cached (warm) and not (cold).
- predict.py piped: all validation texts on stdin, wall seconds of the whole process, per runtime.

The ONNX graphs: model/export.py format=onnx (opset 18), then onnxruntime.transformers.optimizer
(model_type=bert: SkipLayerNormalization and BiasGelu fuse on this graph, attention does not), as
inference/onnx_predictor.py caches it; int8: onnxruntime.quantization.quantize_dynamic of the plain export
(int8 weights, activations quantized per call; it cannot read the fused graph's contrib operators).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # project packages importable

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.inference import (DEFAULT_MODEL, emotion_config, percentile, save_untrained_checkpoint,  # noqa: E402
                                  time_predict_startup, time_transformers)
from data.readers import read_examples  # noqa: E402
from inference.predictor import Predictor  # noqa: E402
from inference.onnx_predictor import (GRAPH_FILE, OnnxPredictor, cached_graph, clear_cached_graph,  # noqa: E402
                                   export_fused)
from inference.runtime import configure_cpu  # noqa: E402
from model.checkpoint import load_checkpoint  # noqa: E402

SENTENCE = "i feel wonderful today"
REFERENCE = "torch fp32 nn.Linear"


def compiled_predictor(checkpoint, batch):
    """Predictor whose model is torch.compile'd with inductor's weight freezing (constants folded, weights
    prepacked for oneDNN): dynamic shapes, so new lengths and batch sizes reuse the compiled graphs."""
    import torch._inductor.config

    torch._inductor.config.freezing = True
    predictor = Predictor(load_checkpoint(checkpoint), "cpu", "fp32", batch, pack_weights=False)
    predictor.model = torch.compile(predictor.model, dynamic=True)
    return predictor


def build_paths(checkpoint: Path, graphs: Path, a) -> tuple[dict, dict, dict]:
    """name -> predictor, name -> predict.py setting, name -> seconds from loading to the first answer."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def timed(build):
        t0 = time.perf_counter()
        predictor = build()
        predictor.probabilities([SENTENCE])
        return predictor, time.perf_counter() - t0

    builders = {
        REFERENCE: ("runtime=torch pack_weights=false",
                    lambda: Predictor(load_checkpoint(checkpoint), "cpu", "fp32", a.batch, pack_weights=False)),
        "torch fp32 packed (oneDNN)": ("runtime=torch (auto: text=, piped)",
                                       lambda: Predictor(load_checkpoint(checkpoint), "cpu", "fp32", a.batch)),
        "torch bf16 packed": ("runtime=torch precision=bf16",
                              lambda: Predictor(load_checkpoint(checkpoint), "cpu", "bf16", a.batch)),
        "torch.compile, freezing": ("—", lambda: compiled_predictor(checkpoint, a.batch)),
        # cold: exported and fused into an empty cache; warm: the same graph read back (what predict.py does)
        "ONNX Runtime + fusions, cold": ("(first run)", lambda: OnnxPredictor.for_checkpoint(
            load_checkpoint(checkpoint), checkpoint, a.batch, cache=graphs / "cache")),
        "ONNX Runtime + fusions": ("runtime=onnx (auto: the prompt)", lambda: OnnxPredictor.for_checkpoint(
            load_checkpoint(checkpoint), checkpoint, a.batch, cache=graphs / "cache")),
    }
    predictors, settings, first = {}, {}, {}
    for name, (setting, build) in builders.items():
        predictors[name], first[name] = timed(build)
        settings[name] = setting
        print(f"{name}: first answer {first[name]:.2f} s after loading", file=sys.stderr)
    del predictors["ONNX Runtime + fusions, cold"]  # the same session as the warm one: timed once

    plain = graphs / "plain"
    export_fused(load_checkpoint(checkpoint), checkpoint, plain)  # model.onnx as exported, fused.onnx
    # The quantizer's shape inference fails on the fused graph (contrib ops) and on the exporter's own
    # value_info for the head (384 vs 6): it quantizes the plain export, its value_info dropped.
    graph = onnx.load(str(plain / GRAPH_FILE))
    del graph.graph.value_info[:]
    onnx.save(graph, str(plain / "no_value_info.onnx"))
    quantize_dynamic(str(plain / "no_value_info.onnx"), str(plain / "int8.onnx"), weight_type=QuantType.QInt8)
    for name, graph in (("ONNX Runtime, export as is", plain / GRAPH_FILE),
                        ("ONNX Runtime, int8 dynamic", plain / "int8.onnx")):
        predictors[name], first[name] = timed(lambda: OnnxPredictor(load_checkpoint(checkpoint), graph, a.batch))
        settings[name] = "—"
    return predictors, settings, first


def time_single(predictors: dict, texts: list[str], a) -> dict:
    latencies = {name: [] for name in predictors}
    for block in np.array_split(np.arange(a.n), a.rounds):
        for name, predictor in predictors.items():
            for text in texts[:a.warmup]:  # the previous path's threads and weights have just held the cores
                predictor.probabilities([text])
            for i in block:
                t0 = time.perf_counter()
                predictor.probabilities([texts[i]])
                latencies[name].append((time.perf_counter() - t0) * 1e3)
    return latencies


def time_batches(predictors: dict, texts: list[str], a) -> tuple[dict, dict]:
    probabilities = {name: predictor.probabilities(texts) for name, predictor in predictors.items()}  # untimed
    seconds = {name: [] for name in predictors}
    for _ in range(a.batch_repeats):
        for name, predictor in predictors.items():
            t0 = time.perf_counter()
            predictor.probabilities(texts)
            seconds[name].append(time.perf_counter() - t0)
    return {name: len(texts) / statistics.median(s) for name, s in seconds.items()}, probabilities


def time_predict_py(checkpoint: Path, a) -> dict:
    threads = f"threads={a.threads}"
    runs = {"runtime=torch": ([threads, "runtime=torch"], None),
            "runtime=onnx, graph cached (warm)": ([threads, "runtime=onnx"], None),
            "runtime=onnx, first run (cold: export + fusions)": ([threads, "runtime=onnx"],
                                                                   lambda: clear_cached_graph(checkpoint))}
    cached_graph(load_checkpoint(checkpoint), checkpoint)  # the warm runs find it
    return {name: time_predict_startup(checkpoint, args, SENTENCE, a.startup_repeats, before_each)
            for name, (args, before_each) in runs.items()}  # the cold runs leave it cached again


def time_predict_piped(checkpoint: Path, texts: list[str], a) -> dict:
    """Wall seconds of `predict.py checkpoint=DIR runtime=R < texts` (one JSON line per text), graph cached:
    the batch case end to end in its own process, start-up included; median of --startup-repeats."""
    lines = "".join(text.replace("\n", " ") + "\n" for text in texts)
    seconds = {}
    for runtime in ("torch", "onnx"):
        runs = []
        for _ in range(a.startup_repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "predict.py", f"checkpoint={checkpoint}", f"threads={a.threads}",
                            f"runtime={runtime}"], input=lines, capture_output=True, text=True, check=True,
                           cwd=str(Path(__file__).resolve().parent.parent))
            runs.append(time.perf_counter() - t0)
        seconds[f"runtime={runtime}"] = statistics.median(runs)
    return seconds


def cpu_kind() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    has = [f for f in ("avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags]
    return f"{fields.get('Model name', '?').strip()} ({', '.join(has) or 'no AVX-512'})"


def main(a):
    configure_cpu(a.threads)
    data_cfg = emotion_config()
    data_file = str(Path(a.data or data_cfg.validation).resolve())
    texts = read_examples(data_file).texts
    with tempfile.TemporaryDirectory(prefix="inference_runtimes_") as tmp:
        checkpoint = Path(a.checkpoint) if a.checkpoint else save_untrained_checkpoint(
            Path(tmp) / "untrained", DEFAULT_MODEL, list(data_cfg.labels), data_cfg.max_len)
        predictors, settings, first = build_paths(checkpoint, Path(tmp), a)
        latencies = time_single(predictors, texts, a)
        throughput, probabilities = time_batches(predictors, texts, a)
        del predictors  # free the cores' caches and memory for the processes below
        theirs = time_transformers(data_file, a)
        startup = time_predict_py(checkpoint, a)
        piped = time_predict_piped(checkpoint, texts, a)

    reference = probabilities[REFERENCE]
    packed = "torch fp32 packed (oneDNN)"
    p50 = {name: percentile(ms, .5) for name, ms in latencies.items()}
    print(f"\n{a.checkpoint or 'untrained head on the default encoder'}; {len(texts)} texts of {data_file}; "
          f"{cpu_kind()}, {torch.get_num_threads()} threads; single texts: {a.n} in {a.rounds} rounds, "
          f"{a.warmup} warm-up each; batches of {a.batch}, median of {a.batch_repeats}\n")
    print("| path | predict.py | single p50 ms | single p99 ms | batch texts/s | load → first answer s "
          f"| same label as {REFERENCE} | max probability difference |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in latencies:
        same = float(np.mean(probabilities[name].argmax(1) == reference.argmax(1)))
        diff = np.abs(probabilities[name] - reference).max()
        print(f"| {name} | {settings[name]} | {p50[name]:.2f} | {percentile(latencies[name], .99):.2f} "
              f"| {throughput[name]:.1f} | {first[name]:.2f} | {same:.2%} | {diff:.1e} |")
    cold = "ONNX Runtime + fusions, cold"
    print(f"| {cold} | {settings[cold]} | | | | {first[cold]:.2f} | | |")
    print(f"| transformers model | — | {theirs['model_p50_ms']} | {theirs['model_p99_ms']} "
          f"| {theirs['batch_texts_per_s']} | | | |")
    print(f"| transformers pipeline | — | {theirs['pipeline_p50_ms']} | {theirs['pipeline_p99_ms']} | | | | |")

    print("\nRatios within this invocation (p50: lower is faster; batch: higher is faster):\n")
    print("| path | p50 / transformers model | p50 / torch packed | batch / transformers model "
          "| batch / torch packed |")
    print("|---|---:|---:|---:|---:|")
    for name in latencies:
        print(f"| {name} | {p50[name] / theirs['model_p50_ms']:.2f} | {p50[name] / p50[packed]:.2f} "
              f"| {throughput[name] / theirs['batch_texts_per_s']:.2f} | {throughput[name] / throughput[packed]:.2f} |")

    print(f"\npredict.py start-up, median of {a.startup_repeats} fresh processes:\n")
    print("| python predict.py checkpoint=DIR ... | to its prompt s | to its first answer s | runs (to prompt) |")
    print("|---|---:|---:|---|")
    for name, r in startup.items():
        print(f"| {name} | {r['startup_to_prompt_s']} | {r['startup_to_first_answer_s']} "
              f"| {', '.join(map(str, r['startup_to_prompt_runs']))} |")

    print(f"\npredict.py piped, all {len(texts)} texts (graph cached), median of {a.startup_repeats}:\n")
    print("| python predict.py checkpoint=DIR ... < texts | wall s | texts/s, start-up included |")
    print("|---|---:|---:|")
    for name, s in piped.items():
        print(f"| {name} | {s:.2f} | {len(texts) / s:.1f} |")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="checkpoint directory; default: untrained head on the default encoder")
    p.add_argument("--model", default=DEFAULT_MODEL, help="encoder directory for transformers (hf_inference.py)")
    p.add_argument("--data", help="JSONL with text and label fields; default: emotion validation split")
    p.add_argument("--n", type=int, default=200, help="single texts timed per path (use at least 200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed texts before each block")
    p.add_argument("--rounds", type=int, default=4, help="blocks the timed texts are cut into")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batch-repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--startup-repeats", type=int, default=3)
    return p.parse_args()


if __name__ == "__main__":
    main(parse_args())
