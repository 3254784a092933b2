"""Baselines to read a fine-tuned model's scores against, as "NLP with Transformers" ch. 2 does: the
most frequent class of the training split, and logistic regression on the sentence vectors of the
frozen pretrained encoder (the one the checkpoint was fine-tuned from), fitted on the training split.
"""
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

from data.dataset import ClassificationDataset
from data.tokenizer import load_tokenizer
from data.transform import BERTSentenceTransform
from engine.inference import eval_loader, predict_outputs, prepare_for_inference
from engine.metrics import classification_metrics
from model.bert import BertEncoder
from model.classifier import BERTClassifier


def most_frequent_class(train_labels, eval_labels, label_names: list[str]) -> dict:
    """Always predicts the training split's commonest class: its accuracy is that class's share."""
    majority = int(np.bincount(train_labels, minlength=len(label_names)).argmax())
    metrics = classification_metrics(eval_labels, np.full(len(eval_labels), majority), label_names)
    return {"name": f"most frequent class ({label_names[majority]})", **metrics}


class FrozenEncoder:
    """The pretrained encoder, untouched, pooled as the classifier pools (pooler | cls | mean)."""

    def __init__(self, encoder_dir, pooling: str, max_len: int, pair: bool, device, precision: str,
                 pack_weights: bool, batch_size: int):
        # The head is never used: BERTClassifier only supplies the pooling the fine-tuned model used.
        self.model = BERTClassifier(BertEncoder.from_pretrained(encoder_dir), 1, pooling=pooling).to(device)
        self.autocast = prepare_for_inference(self.model, device, precision, pack_weights)
        self.transform = BERTSentenceTransform(load_tokenizer(encoder_dir), max_len, pair=pair)
        self.pooling, self.device, self.batch_size = pooling, device, batch_size

    def vectors(self, texts: list[str], texts_b=None) -> np.ndarray:
        dataset = ClassificationDataset(texts, None, self.transform, texts_b)
        loader = eval_loader(dataset, self.batch_size)
        return predict_outputs(self.model, loader, self.device, self.autocast, with_vectors=True)[1]


def logistic_regression(train_vectors, train_labels, eval_vectors, eval_labels, label_names: list[str],
                        name="logistic regression on frozen encoder vectors") -> dict:
    """sklearn's LogisticRegression as the book fits it (max_iter=3000, default L2 strength, unscaled)."""
    started = time.perf_counter()
    # One BLAS thread: its products are too small to share out. On the 2 shared project cores (emotion,
    # 16k x 384 vectors) the fit took 2.4 s with one thread and 16 to 51 s with two.
    with threadpool_limits(1):
        classifier = LogisticRegression(max_iter=3000).fit(train_vectors, train_labels)
    metrics = classification_metrics(eval_labels, classifier.predict(eval_vectors), label_names)
    return {"name": name, "fit_seconds": round(time.perf_counter() - started, 1),
            **metrics}


def format_comparison(rows: list[dict]) -> str:
    """rows: {"name", "accuracy", "macro_f1", ...}, the model first."""
    width = max(len(r["name"]) for r in rows)
    lines = [f"{'':<{width}} {'accuracy':>9} {'macro-F1':>9}"]
    lines += [f"{r['name']:<{width}} {r['accuracy']:>9.4f} {r['macro_f1']:>9.4f}" for r in rows]
    return "\n".join(lines)
