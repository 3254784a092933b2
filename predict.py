"""Predict with a trained checkpoint: interactive prompt, piped lines, or one text.

    python predict.py checkpoint=DIR                  # prompt; quit / exit / 0 / Ctrl-D to leave
    python predict.py checkpoint=DIR < texts.txt      # one JSON object per input line
    python predict.py checkpoint=DIR text="i feel great"
    python predict.py checkpoint=DIR threshold=0.3    # multi-label: one threshold for every label
    python predict.py checkpoint=DIR runtime=onnx     # ONNX Runtime (auto: only at the prompt; default: torch)
    python predict.py checkpoint='runs/*/checkpoints/best'   # an ensemble: the mean of their probabilities
    python predict.py checkpoint=DIR_A,DIR_B,DIR_C           # the same, listed
"""
import json
import sys

import numpy as np

import hydra
from omegaconf import DictConfig

from common.checks import check_predict
from common.cli import check_overrides
from common.display_width import display_width, pad_to_width
from common.errors import exit_on_user_error
from inference.ensemble import EnsemblePredictor, load_classifier
from inference.predictor import Predictor
from inference.runtime import configure_cpu, pick_device

QUIT_WORDS = {"quit", "exit", "0"}  # "0" ends the KoBERT tutorial's loop too


def as_record(text: str, probs, labels, decision) -> dict:
    """Single-label: `label` (the argmax) and its `score`; multi-label: `labels`, every label at or above its
    threshold (possibly none). Both: `probs` of every label."""
    all_probs = {name: round(float(p), 6) for name, p in zip(labels, probs)}
    if decision.multi_label:
        chosen = decision.predict(probs[None])[0]
        return {"text": text, "labels": [labels[i] for i in np.flatnonzero(chosen)], "probs": all_probs}
    best = int(probs.argmax())
    return {"text": text, "label": labels[best], "score": round(float(probs[best]), 6), "probs": all_probs}


def print_bars(labels, probs, order, width: int):
    for i in order:
        print(f"  {pad_to_width(labels[i], width)} {probs[i]:7.2%}  {'#' * round(probs[i] * 30)}")


def show_multilabel(predictor: Predictor, probs, width: int):
    """Every label at or above its threshold, most probable first; when none passes, the top three."""
    labels, chosen = predictor.labels, predictor.decision.predict(probs[None])[0]
    passed = [i for i in probs.argsort()[::-1] if chosen[i]]
    if passed:
        print(", ".join(f"{labels[i]} ({probs[i]:.1%})" for i in passed))
        print_bars(labels, probs, passed, width)
    else:
        print("no label over its threshold; most probable:")
        print_bars(labels, probs, probs.argsort()[::-1][:3], width)


def interactive(predictor: Predictor):
    width = max(display_width(name) for name in predictor.labels)  # columns: a Hangul syllable takes two
    if isinstance(predictor, EnsemblePredictor):
        print(f"an ensemble of {len(predictor.names)} checkpoints (the mean of their probabilities): "
              f"{', '.join(predictor.names)}")
    print(f"labels: {', '.join(predictor.labels)}. Type a sentence; quit, exit, 0 or Ctrl-D to leave.")
    while True:
        try:
            text = input("> ")
        except (EOFError, KeyboardInterrupt):  # Ctrl-D / Ctrl-C at the prompt: leave quietly
            print()
            return
        if not text.strip():
            continue
        if text.strip().lower() in QUIT_WORDS:
            return
        probs = predictor.probabilities([text])[0]
        if predictor.decision.multi_label:
            show_multilabel(predictor, probs, width)
            continue
        print(f"{predictor.labels[int(probs.argmax())]}  ({probs.max():.1%})")
        print_bars(predictor.labels, probs, probs.argsort()[::-1], width)


def piped(predictor: Predictor, lines, out):
    """Reads a chunk of lines at a time so large files stream with batched forward passes."""
    chunk = []
    for line in lines:
        chunk.append(line.rstrip("\n"))
        if len(chunk) == 1024:
            write_records(predictor, chunk, out)
            chunk = []
    write_records(predictor, chunk, out)


def write_records(predictor, texts, out):
    texts = [t for t in texts if t.strip()]
    if texts:
        for text, probs in zip(texts, predictor.probabilities(texts)):
            out.write(json.dumps(as_record(text, probs, predictor.labels, predictor.decision), ensure_ascii=False)
                      + "\n")
        out.flush()


@hydra.main(config_path="conf", config_name="predict", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig):
    check_predict(cfg)
    configure_cpu(cfg.threads)
    device = pick_device(cfg.device)
    at_prompt = cfg.text is None and sys.stdin.isatty()  # runtime=auto: ONNX Runtime only there
    predictor = load_classifier(cfg.checkpoint, device, runtime=cfg.runtime, precision=cfg.precision,
                                batch_size=cfg.batch_size, pack_weights=cfg.pack_weights, threshold=cfg.threshold,
                                interactive=at_prompt)
    # Undecodable bytes on stdin become U+FFFD instead of a UnicodeDecodeError halfway through a file.
    sys.stdin.reconfigure(errors="replace")
    if cfg.text is not None:
        write_records(predictor, [str(cfg.text)], sys.stdout)
    elif at_prompt:
        interactive(predictor)
    else:
        piped(predictor, sys.stdin, sys.stdout)


if __name__ == "__main__":
    check_overrides("predict", checks=check_predict)
    main()
