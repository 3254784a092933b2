"""Baselines for a multi-label checkpoint (evaluate.py baselines=true), fitted on the training split and
scored on the evaluated one: every text gets the training split's most frequent label; and one-vs-rest
logistic regression (C=4) on TF-IDF of word 1-2-grams, the floor issue 17 set for GoEmotions, once at
thresholds tuned on the validation split exactly as training tunes them (trainer.threshold_scope /
threshold_metric of the checkpoint's run) and once at the fixed 0.3 of the popular reimplementation.
"""
import time
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from omegaconf import OmegaConf
from threadpoolctl import threadpool_limits

from data.build import label_ids, read_split
from data.readers import Examples
from evaluation.analysis import display_texts
from evaluation.baselines import BaselineScore, checkpoint_train_config
from evaluation.metrics import multilabel_metrics
from evaluation.thresholds import tune_thresholds

FIXED_THRESHOLD = 0.3


@dataclass
class MultilabelBaselines:
    """evaluation.baselines.Baselines' counterpart: what they are fitted and tuned on, read before the evaluation
    pass. No frozen-encoder row."""
    train: Examples
    train_labels: np.ndarray
    validation: Examples  # where the TF-IDF baseline tunes its thresholds, as the run's trainer did
    validation_labels: np.ndarray
    threshold_scope: str
    threshold_metric: str

    @classmethod
    def prepare(cls, cfg, data_cfg, loaded, device=None) -> "MultilabelBaselines":
        labels = loaded.info.labels
        train, validation = read_split(data_cfg, "train"), read_split(data_cfg, "validation")
        trainer = checkpoint_train_config(cfg.checkpoint, "data=...", "trainer")
        return cls(train, label_ids(train, labels, multi_label=True), validation,
                   label_ids(validation, labels, multi_label=True),
                   OmegaConf.select(trainer, "threshold_scope", default="per_label"),
                   OmegaConf.select(trainer, "threshold_metric", default="macro_f1"))

    def scores(self, examples: Examples, eval_labels, label_names: list[str]) -> list[BaselineScore]:
        """Without per-example probabilities: evaluate.py's baseline_predictions= is single-label only."""
        rows = [most_frequent_label(self.train_labels, eval_labels, label_names),
                *tfidf_one_vs_rest(self.train, self.train_labels, self.validation, self.validation_labels,
                                   examples, eval_labels, label_names, self.threshold_scope, self.threshold_metric)]
        return [BaselineScore(row) for row in rows]


def most_frequent_label(train_labels: np.ndarray, eval_labels: np.ndarray, label_names: list[str]) -> dict:
    commonest = int(train_labels.sum(0).argmax())
    predicted = np.zeros_like(eval_labels, dtype=np.uint8)
    predicted[:, commonest] = 1
    probabilities = np.broadcast_to(train_labels.mean(0), eval_labels.shape)  # label frequencies: mAP's floor
    return {"name": f"most frequent label for every text ({label_names[commonest]})",
            **multilabel_metrics(eval_labels, predicted, probabilities, label_names)}


def tfidf_one_vs_rest(train, train_labels, validation, validation_labels, evaluated, eval_labels,
                      label_names: list[str], scope: str = "per_label", metric: str = "macro_f1") -> list[dict]:
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2))
    # Labels absent from training have nothing to learn from (OneVsRest would refuse a constant column).
    present = train_labels.sum(0) > 0
    with threadpool_limits(1):  # one BLAS thread, as evaluation/baselines.py
        classifier = OneVsRestClassifier(LogisticRegression(C=4, max_iter=3000)).fit(
            vectorizer.fit_transform(display_texts(train)), train_labels[:, present].astype(int))

    def probabilities(examples) -> np.ndarray:
        p = np.zeros((len(examples), len(label_names)))
        p[:, present] = classifier.predict_proba(vectorizer.transform(display_texts(examples)))
        return p

    fit_seconds = round(time.perf_counter() - started, 1)
    thresholds = tune_thresholds(probabilities(validation), validation_labels, scope, metric)
    eval_probabilities = probabilities(evaluated)
    name = "one-vs-rest logistic regression, TF-IDF of word 1-2-grams"
    return [{"name": f"{name}, thresholds tuned on validation ({scope})", "fit_seconds": fit_seconds,
             **multilabel_metrics(eval_labels, eval_probabilities >= thresholds, eval_probabilities, label_names)},
            {"name": f"{name}, threshold {FIXED_THRESHOLD}", "fit_seconds": fit_seconds,
             **multilabel_metrics(eval_labels, eval_probabilities >= FIXED_THRESHOLD, eval_probabilities,
                                  label_names)}]
