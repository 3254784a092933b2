"""Baselines to read a fine-tuned model's scores against (evaluate.py baselines=true), all fitted on
the training split and scored on the evaluated one: the most frequent class; logistic regression on
character 1-3-gram TF-IDF of the texts (what reviewers ask first; no tokenizer, so any script, Korean
included); and, as "NLP with Transformers" ch. 2 does, logistic regression on the sentence vectors of
the frozen pretrained encoder the checkpoint was fine-tuned from.
"""
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

from common.errors import UserError
from data.build import label_ids, read_split
from data.dataset import ClassificationDataset
from data.readers import Examples
from data.tokenizer import load_tokenizer
from data.transform import BERTSentenceTransform, framing_of
from evaluation.analysis import display_texts
from inference.batches import eval_loader, predict_outputs, prepare_for_inference
from evaluation.metrics import classification_metrics
from model.encoders.families import load_encoder
from model.checkpoint import TRAIN_CONFIG
from model.classifier import BERTClassifier


@dataclass
class BaselineScore:
    report: dict  # name, fit time and metrics, as evaluate.py prints and writes them
    # (N, classes) on the evaluated examples, for a predictions file research.compare reads: evaluate.py
    # baseline_predictions=DIR writes DIR/<short_name>.npz. None: multi-label rows (no such file)
    probabilities: np.ndarray | None = None
    short_name: str | None = None


def checkpoint_train_config(checkpoint, needed_for: str, key: str):
    """`key` of the resolved config of the run that wrote `checkpoint` (its train_config.yaml); a file that
    is not YAML, not a mapping, or lacks the key is one line naming the file and key."""
    path = Path(checkpoint) / TRAIN_CONFIG
    if not path.is_file():
        raise UserError(f"{path} is missing: pass {needed_for}")
    try:
        config = OmegaConf.load(path)
        value = OmegaConf.select(config, key) if isinstance(config, DictConfig) else None
    except Exception as e:  # yaml's scanner/parser errors, OmegaConf's interpolation errors
        raise UserError(f"{path}: not a readable config ({str(e).splitlines()[0]}); pass {needed_for}") from None
    if value is None:
        raise UserError(f"{path}: no {key} in it; pass {needed_for}")
    return value


@dataclass
class Baselines:
    """What the baselines are fitted on, read and checked before the (slow) evaluation pass."""
    train: Examples
    train_labels: np.ndarray
    encoder: "FrozenEncoder"

    @classmethod
    def prepare(cls, cfg, data_cfg, loaded, device) -> "Baselines":
        """cfg: evaluate.py's config; loaded: the checkpoint (its labels, pooling, max_len)."""
        train = read_split(data_cfg, "train")
        return cls(train, label_ids(train, loaded.info.labels), FrozenEncoder.of_checkpoint(cfg, loaded, device))

    def scores(self, examples: Examples, eval_labels, label_names: list[str]) -> list[BaselineScore]:
        started = time.perf_counter()
        train_vectors = self.encoder.vectors(self.train.texts, self.train.texts_b)
        eval_vectors = self.encoder.vectors(examples.texts, examples.texts_b)
        print(f"\nbaselines: frozen-encoder vectors of {len(self.train)} training + {len(examples)} evaluated texts "
              f"in {time.perf_counter() - started:.0f}s")
        return [most_frequent_class(self.train_labels, eval_labels, label_names),
                logistic_regression(train_vectors, self.train_labels, eval_vectors, eval_labels, label_names,
                                    f"logistic regression, frozen encoder ({self.encoder.pooling})"),
                tfidf_logistic_regression(display_texts(self.train), self.train_labels, display_texts(examples),
                                          eval_labels, label_names)]


def most_frequent_class(train_labels, eval_labels, label_names: list[str]) -> BaselineScore:
    """Always predicts the training split's commonest class: its accuracy is that class's share. Its
    probabilities are the training split's class shares, the same for every text."""
    counts = np.bincount(train_labels, minlength=len(label_names))
    majority = int(counts.argmax())
    metrics = classification_metrics(eval_labels, np.full(len(eval_labels), majority), label_names)
    shares = np.tile(counts / counts.sum(), (len(eval_labels), 1))
    return BaselineScore({"name": f"most frequent class ({label_names[majority]})", **metrics}, shares,
                         "most_frequent_class")


def classifier_probabilities(classifier: LogisticRegression, features, n_classes: int) -> np.ndarray:
    """predict_proba's columns placed at their class ids (a class absent from training keeps 0)."""
    probabilities = np.zeros((features.shape[0], n_classes))
    probabilities[:, classifier.classes_] = classifier.predict_proba(features)
    return probabilities


class FrozenEncoder:
    """The pretrained encoder, untouched, pooled as the classifier pools (pooler | cls | mean)."""

    @classmethod
    def of_checkpoint(cls, cfg, loaded, device) -> "FrozenEncoder":
        """baseline_encoder, else the encoder the checkpoint was fine-tuned from (its model.path), pooled
        as baseline_pooling says, else as the checkpoint pools."""
        if cfg.baseline_encoder:
            path, key = Path(cfg.baseline_encoder), "baseline_encoder"
        else:
            path = Path(checkpoint_train_config(cfg.checkpoint, "baseline_encoder=DIR", "model.path"))
            key = f"model.path in {TRAIN_CONFIG}"
        if not path.is_dir():
            raise UserError(f"{path} ({key}): pretrained encoder directory not found; pass baseline_encoder=DIR")
        return cls(path, cfg.baseline_pooling or loaded.info.pooling, loaded.info.max_len, loaded.info.pair, device,
                   cfg.precision, cfg.pack_weights, cfg.batch_size, loaded.info.text_prefix)

    def __init__(self, encoder_dir, pooling: str, max_len: int, pair: bool, device, precision: str,
                 pack_weights: bool, batch_size: int, text_prefix: str = ""):
        # The head is never used: BERTClassifier only supplies the pooling the fine-tuned model used.
        encoder = load_encoder(encoder_dir)
        self.model = BERTClassifier(encoder, 1, pooling=pooling).to(device)
        self.autocast = prepare_for_inference(self.model, device, precision, pack_weights)
        tokenizer = load_tokenizer(encoder_dir)
        self.transform = BERTSentenceTransform(tokenizer, max_len, pair=pair, text_prefix=text_prefix,
                                               framing=framing_of(encoder.config.model_type, tokenizer))
        self.pooling, self.device, self.batch_size = pooling, device, batch_size

    def vectors(self, texts: list[str], texts_b=None) -> np.ndarray:
        dataset = ClassificationDataset(texts, None, self.transform, texts_b)
        loader = eval_loader(dataset, self.batch_size)
        return predict_outputs(self.model, loader, self.device, self.autocast, with_vectors=True)[1]


def logistic_regression(train_vectors, train_labels, eval_vectors, eval_labels, label_names: list[str],
                        name="logistic regression on frozen encoder vectors", short_name="frozen_encoder_lr"
                        ) -> BaselineScore:
    """sklearn's LogisticRegression as the book fits it (max_iter=3000, default L2 strength, unscaled)."""
    started = time.perf_counter()
    # One BLAS thread: its products are too small to share out, and on shared cores two threads made
    # the fit several times slower (BENCHMARKS.md → Figures the code relies on).
    with threadpool_limits(1):
        classifier = LogisticRegression(max_iter=3000).fit(train_vectors, train_labels)
    metrics = classification_metrics(eval_labels, classifier.predict(eval_vectors), label_names)
    return BaselineScore({"name": name, "fit_seconds": round(time.perf_counter() - started, 1), **metrics},
                         classifier_probabilities(classifier, eval_vectors, len(label_names)), short_name)


def tfidf_logistic_regression(train_texts: list[str], train_labels, eval_texts: list[str], eval_labels,
                              label_names: list[str]) -> BaselineScore:
    """Logistic regression (C=1, max_iter=3000) on TF-IDF of character 1- to 3-grams, fitted on the
    training texts (pairs as `a [SEP] b`). Characters need no tokenizer: Hangul works as English does."""
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3))
    with threadpool_limits(1):  # as logistic_regression: one BLAS thread
        classifier = LogisticRegression(C=1, max_iter=3000).fit(vectorizer.fit_transform(train_texts), train_labels)
    features = vectorizer.transform(eval_texts)
    return BaselineScore({"name": "logistic regression, TF-IDF of character 1-3-grams",
                          "fit_seconds": round(time.perf_counter() - started, 1),
                          **classification_metrics(eval_labels, classifier.predict(features), label_names)},
                         classifier_probabilities(classifier, features, len(label_names)), "tfidf_char_lr")


def format_comparison(rows: list[dict]) -> str:
    """rows: {"name", "accuracy", "macro_f1", ...}, the model first; multi-label rows: micro-F1 and mAP too."""
    width = max(len(r["name"]) for r in rows)
    columns = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
    if "micro_f1" in rows[0]:
        columns = {"micro_f1": "micro-F1", "macro_f1": "macro-F1", "mean_ap": "mAP", "accuracy": "subset acc"}
    sizes = {key: max(9, len(title)) for key, title in columns.items()}
    lines = [f"{'':<{width}} " + " ".join(f"{title:>{sizes[key]}}" for key, title in columns.items())]
    lines += [f"{r['name']:<{width}} " + " ".join(f"{r[key]:>{sizes[key]}.4f}" for key in columns) for r in rows]
    return "\n".join(lines)
