"""Test accuracy of our train.py vs the Hugging Face Trainer on the same split, model and recipe.

    python benchmarks/accuracy_vs_hf.py                       # tweets (the default data), 2 epochs
    python benchmarks/accuracy_vs_hf.py --data emotion --epochs 3
    python benchmarks/accuracy_vs_hf.py --data emotion --epochs 1 --split validation --precision fp32

Both sides: all-MiniLM-L6-v2, batch 32, max_len 64, lr 1e-4, AdamW (weight decay 0.01), 10% warmup
then cosine, grad-norm clip 1.0, bf16 autocast (--precision fp32: neither), seed 42, the same number
of epochs, 2 threads. Scored on the test split, or (--split validation) on validation: ours then
reports its best validation epoch, which after one epoch is that epoch.
The split is ours (data.split_seed), written to JSONL for the Trainer (../shared/tools/hf_baseline.py,
run unchanged). Differences that remain, by design of each tool: the Trainer evaluates its final
model, ours the best epoch on validation (printed; with cosine decay to 0 it is usually the last);
the Trainer pads random batches, ours groups by length. One run each, sequentially (2 cores).
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402

from data.build import read_splits  # noqa: E402
import common.config  # noqa: E402,F401  (registers the conf/ resolvers)

HF_BASELINE = PROJECT_ROOT.parent / "shared" / "tools" / "hf_baseline.py"


def write_jsonl(path: Path, examples):
    with open(path, "w", encoding="utf-8") as f:
        for text, label in zip(examples.texts, examples.labels):
            f.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="tweets", choices=["tweets", "emotion"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--split", default="test", choices=["test", "validation"], help="the split both are scored on")
    a = p.parse_args()
    overrides = [f"data={a.data}", f"trainer.max_epochs={a.epochs}", f"optim.lr={a.lr}", "trainer.batch_size=32",
                 "data.max_len=64", f"trainer.precision={a.precision}", "seed=42", f"trainer.threads={a.threads}"]
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    splits = read_splits(cfg.data)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("train", a.split):
            write_jsonl(tmp / f"{name}.jsonl", splits[name])
        start = time.perf_counter()
        ours = subprocess.run([sys.executable, "train.py", *overrides, f"hydra.run.dir={tmp / 'ours'}"],
                              cwd=PROJECT_ROOT, capture_output=True, text=True)
        ours_wall = time.perf_counter() - start
        if ours.returncode:
            sys.exit(f"our run failed:\n{ours.stderr[-2000:]}")
        metrics = json.loads((tmp / "ours" / "metrics.json").read_text())
        hf = subprocess.run([sys.executable, str(HF_BASELINE), "--model", cfg.model.path,
                             "--train", str(tmp / "train.jsonl"), "--eval", str(tmp / f"{a.split}.jsonl"),
                             "--epochs", str(a.epochs), "--batch", "32", "--max-len", "64", "--lr", str(a.lr),
                             *(["--bf16"] if a.precision == "bf16" else []), "--threads", str(a.threads),
                             "--out", str(tmp / "hf")],
                            capture_output=True, text=True)
        if hf.returncode:
            sys.exit(f"Trainer run failed:\n{hf.stderr[-2000:]}")
        theirs = json.loads(hf.stdout.strip().splitlines()[-1])

    scored = metrics["test"] if a.split == "test" else metrics["best_validation"]
    rows = [("ours (train.py)", scored["accuracy"], scored["macro_f1"],
             metrics["train_seconds"], metrics["train_samples_per_second"],
             f"best epoch {metrics['best_validation']['epoch']}; whole run {ours_wall:.0f}s"),
            ("HF Trainer", theirs["eval_accuracy"], theirs["eval_f1_macro"], theirs["train_wall_s"],
             theirs["train_samples_per_s"], "final model")]
    print(f"\n{a.data}: train {len(splits['train'])}, {a.split} {len(splits[a.split])}, {a.epochs} epochs, "
          f"lr {a.lr}, {a.precision}\n")
    print(f"| run | {a.split} accuracy | {a.split} macro-F1 | train s | samples/s | note |\n|---|---|---|---|---|---|")
    for name, acc, f1, secs, sps, note in rows:
        print(f"| {name} | {acc:.4f} | {f1:.4f} | {secs:.0f} | {sps:.1f} | {note} |")
    print(json.dumps({"data": a.data, "epochs": a.epochs, "precision": a.precision, "split": a.split,
                      "ours": {k: scored[k] for k in ("accuracy", "macro_f1")}, "hf": theirs,
                      "accuracy_gap_points": round(100 * (scored["accuracy"] - theirs["eval_accuracy"]), 2)}))


if __name__ == "__main__":
    main()
