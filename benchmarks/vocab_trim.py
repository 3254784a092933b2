"""What model.trim_vocab buys on the Korean recipe, and what it costs in predictions.

    python benchmarks/vocab_trim.py                          # full vs trimmed vocabulary: speed, memory, checkpoints
    python benchmarks/vocab_trim.py --steps 20 --repeats 1   # quicker
    python benchmarks/vocab_trim.py --agreement outputs/korean_emotion/<run>/checkpoints/best

Speed (default mode): each measurement is a fresh subprocess (`--worker full|trimmed`), alternated
full, trimmed, full, trimmed ..., on multilingual-e5-small with data=korean_emotion and the given
overrides (default: experiment=korean_emotion_e5). A worker builds tokenizer, data, model and
optimizer with the project's functions, trains `--warmup` + `--steps` optimizer steps and times the
last `--steps`; then it writes a resumable checkpoint (weights, config, tokenizer, optimizer moments)
as train.py's checkpoints/last holds it, timed, and reports its size. Peak RSS: ru_maxrss of the child.

Agreement (`--agreement DIR`): a trimmed checkpoint's test-split predictions against those of the
same fine-tuned model with the full vocabulary: the kept rows of the fine-tuned embedding table put
back into the pretrained 250k-row table (rows the training split never used get no gradient, so
without trimming they would have stayed where they were, up to weight decay) and the test texts
tokenized by the full tokenizer. Only texts whose pieces were trimmed can change.
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
sys.path.insert(0, str(PROJECT_ROOT))

import torch  # noqa: E402

import common.config  # noqa: E402,F401  (registers the conf/ resolvers)


def compose_config(overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def worker(a) -> dict:
    """train.py's builders and the loop's own epochs (training/loop.py) over warmup + steps optimizer steps,
    the last `steps` timed (as benchmarks/train_throughput.py times them); then checkpoints/last, timed."""
    from benchmarks.train_throughput import TimedLoader
    from data.build import label_ids, label_names, read_splits
    from data.dataset import ClassificationDataset
    from data.transform import BERTSentenceTransform
    from data.vocab_trim import training_tokenizer
    from training.build import build_model, build_optimization, build_train_loader
    from training.distributed import Distributed
    from training.loop import Training, train_one_epoch
    from training.resume import TrainingProgress, rng_state, save_resumable
    from inference.runtime import autocast, configure_cpu, pick_device, seed_everything
    from model.checkpoint import ClassifierInfo

    cfg = compose_config([*a.override, f"model.trim_vocab={a.worker == 'trimmed'}", "trainer.save_every_steps=null",
                          f"trainer.threads={a.threads}", f"trainer.max_steps={a.warmup + a.steps}"])
    configure_cpu(cfg.trainer.threads)
    seed_everything(cfg.seed)
    device = pick_device(cfg.trainer.device)
    tokenizer, kept_rows = training_tokenizer(cfg.model, cfg.data)
    transform = BERTSentenceTransform(tokenizer, cfg.data.max_len, text_prefix=cfg.data.text_prefix)
    train = read_splits(cfg.data)["train"]
    names = label_names(cfg.data, train)
    loader = TimedLoader(build_train_loader(cfg, ClassificationDataset(train.texts, label_ids(train, names), transform),
                                            Distributed(), device), a.warmup, device)
    model = build_model(cfg, len(names), device, kept_rows)
    optimizer, scheduler, _ = build_optimization(cfg, model, a.warmup + a.steps)
    run = Training(cfg=cfg.trainer, model=model, forward=model, optimizer=optimizer, scheduler=scheduler,
                   total_steps=a.warmup + a.steps, train_loader=loader, val_loader=None, label_names=names,
                   device=device, mixed_precision=autocast(device, cfg.trainer.precision))
    progress = TrainingProgress(running_loss=torch.zeros((), device=device))
    for epoch in range(run.epochs):
        train_one_epoch(run, progress, epoch)
    seconds = time.perf_counter() - loader.clock_start
    trainable = run.trainable

    with tempfile.TemporaryDirectory(dir=PROJECT_ROOT / ".cache") as tmp:
        last = Path(tmp) / "last"
        info = ClassifierInfo(names, cfg.model.pooling, cfg.data.max_len, False, cfg.model.dropout)
        save_start = time.perf_counter()
        save_resumable(last, model, info, tokenizer, "", optimizer, scheduler, progress, [rng_state()])
        save_seconds = time.perf_counter() - save_start
        size = sum(f.stat().st_size for f in last.iterdir())
        weights = (last / "model.safetensors").stat().st_size
    return {"config": a.worker, "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "trainable_M": round(sum(p.numel() for p in trainable) / 1e6, 1),
            "samples_per_s": round(a.steps * cfg.trainer.batch_size / seconds, 1),
            "save_s": round(save_seconds, 2), "last_MB": round(size / 1e6), "best_MB": round(weights / 1e6)}


def run_worker(config: str, a) -> dict:
    args = [sys.executable, __file__, "--worker", config, "--steps", str(a.steps), "--warmup", str(a.warmup),
            "--threads", str(a.threads), "--override", *a.override]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"worker {config} failed (exit {os.waitstatus_to_exitcode(status)})")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_MB": round(usage.ru_maxrss / 1024)}


def measure(a):
    rows = []
    for _ in range(a.repeats):
        for config in ("full", "trimmed"):
            rows.append(run_worker(config, a))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nmedian of {a.repeats}, {a.steps} timed steps after {a.warmup}, {a.threads} threads, "
          f"overrides: {' '.join(a.override)}")
    print("| vocabulary | parameters (M) | trainable (M) | samples/s | peak RSS MB | checkpoints/last MB "
          "| checkpoints/best MB | save last s |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for config in ("full", "trimmed"):
        mine = [r for r in rows if r["config"] == config]
        med = lambda key: round(statistics.median(r[key] for r in mine), 2)  # noqa: E731
        print(f"| {config} | {mine[0]['parameters_M']} | {mine[0]['trainable_M']} | {med('samples_per_s')} | "
              f"{med('peak_rss_MB')} | {mine[0]['last_MB']} | {mine[0]['best_MB']} | {med('save_s')} |")


def agreement(a):
    import numpy as np

    from data.build import read_split
    from data.tokenizer import load_tokenizer
    from data.transform import BERTSentenceTransform
    from inference.predictor import Predictor
    from model.encoders.bert import BertEncoder
    from model.checkpoint import LoadedClassifier, load_checkpoint
    from omegaconf import OmegaConf

    trimmed = load_checkpoint(a.agreement)
    train_cfg = OmegaConf.load(Path(a.agreement) / "train_config.yaml")
    full_tokenizer = load_tokenizer(train_cfg.model.path)
    kept_pieces = json.loads(trimmed.transform.tokenizer.spec_text)["model"]["vocab"]
    kept = [full_tokenizer.token_to_id(piece) for piece, _ in kept_pieces]  # old id of each new id
    pretrained = BertEncoder.from_pretrained(train_cfg.model.path).embeddings.word.weight.detach()
    full = load_checkpoint(a.agreement)
    table = pretrained.clone()
    table[torch.tensor(kept)] = trimmed.model.encoder.embeddings.word.weight.detach()
    full.model.encoder.embeddings.word = torch.nn.Embedding.from_pretrained(table, freeze=True, padding_idx=1)
    full.model.encoder.config.vocab_size = table.shape[0]
    info = trimmed.info
    untrimmed = LoadedClassifier(full.model, BERTSentenceTransform(full_tokenizer, info.max_len,
                                                                    text_prefix=info.text_prefix), info)
    test = read_split(train_cfg.data, "test")
    device = torch.device("cpu")
    p_trim = Predictor(trimmed, device, "fp32").probabilities(test.texts)
    p_full = Predictor(untrimmed, device, "fp32").probabilities(test.texts)
    prefix = info.text_prefix
    full_ids = full_tokenizer.encode_batch([prefix + t for t in test.texts])
    kept_set = set(kept)
    touched = [any(i not in kept_set for i in ids) for ids in full_ids]
    same = p_trim.argmax(1) == p_full.argmax(1)
    gold = np.array([info.labels.index(label) for label in test.labels])
    print(f"test texts: {len(test)}; with a piece outside the kept {len(kept):,}: {sum(touched)} "
          f"({100 * np.mean(touched):.1f}%)")
    print(f"same predicted label: {same.mean():.4f} ({int((~same).sum())} differ); "
          f"max |prob difference| {np.abs(p_trim - p_full).max():.4f}")
    print(f"accuracy trimmed {np.mean(p_trim.argmax(1) == gold):.4f}, full vocabulary {np.mean(p_full.argmax(1) == gold):.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--override", nargs="*", default=["experiment=korean_emotion_e5"])
    parser.add_argument("--worker", choices=["full", "trimmed"])
    parser.add_argument("--agreement", metavar="CHECKPOINT")
    a = parser.parse_args()
    if a.worker:
        print(json.dumps(worker(a)))
    elif a.agreement:
        agreement(a)
    else:
        measure(a)


if __name__ == "__main__":
    main()
