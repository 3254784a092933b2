"""From the `data` config to train/validation/test datasets with a fixed label order."""
import logging
from collections import defaultdict
from itertools import combinations

import numpy as np

from data.dataset import ClassificationDataset
from data.readers import Examples, count_repaired, read_examples, stratified_split
from common.errors import UserError

SPLITS = ("train", "validation", "test")
log = logging.getLogger(__name__)


def read_file(data_cfg, path) -> Examples:
    examples = read_examples(path, data_cfg.text_column, data_cfg.label_column, data_cfg.text_b_column,
                             data_cfg.format, data_cfg.delimiter, data_cfg.decode_errors, data_cfg.empty_text)
    # .get: checkpoints trained before data.dedup existed store a data config without it
    return drop_duplicates(examples) if data_cfg.get("dedup", False) else examples


def example_keys(examples: Examples) -> list:
    """What makes two rows the same example: the text, or the (text, text_b) pair."""
    return examples.texts if examples.texts_b is None else list(zip(examples.texts, examples.texts_b))


def drop_duplicates(examples: Examples) -> Examples:
    """Keeps the first row of each text (pair), whatever its label; counts the rows dropped."""
    first_row = {}
    for i, key in enumerate(example_keys(examples)):
        first_row.setdefault(key, i)
    kept = examples.subset(sorted(first_row.values()))
    kept.stats = {**examples.stats, "duplicates_dropped": len(examples) - len(kept)}
    return kept


def read_splits(data_cfg) -> dict[str, Examples]:
    """Reads the configured files; splits missing from the config are carved out of `train`
    (stratified, seeded by data.split_seed) so every run of a config sees the same split."""
    if not data_cfg.train:
        raise UserError("data.train is not set (path of the training file)")
    given = {name: read_file(data_cfg, data_cfg[name]) for name in SPLITS if data_cfg.get(name)}
    missing = [name for name in SPLITS if name not in given]
    if missing:
        fractions = {name: float(data_cfg.split[name]) for name in ["train", *missing]}
        total = sum(fractions.values())
        whole_file = given["train"]
        given.update(stratified_split(whole_file, {k: v / total for k, v in fractions.items()},
                                      data_cfg.split_seed))
        given["train"].stats = whole_file.stats
    return {name: given[name] for name in SPLITS}


def read_split(data_cfg, split: str) -> Examples:
    """One split: its own file when configured, else carved out of train exactly as training did."""
    if split not in SPLITS:
        raise UserError(f"split={split!r} is not one of {', '.join(SPLITS)}")
    # data.train names the whole file that validation/test are carved from when they have no file of their own
    carved_from_train = split == "train" and not all(data_cfg.get(name) for name in SPLITS)
    if data_cfg.get(split) and not carved_from_train:
        return read_file(data_cfg, data_cfg[split])
    return read_splits(data_cfg)[split]


def label_names(data_cfg, train: Examples) -> list[str]:
    names = list(data_cfg.labels) if data_cfg.labels else sorted(set(train.labels))
    if len(set(train.labels)) < 2:
        raise UserError(f"{train.source}: only one class ({train.labels[0]!r}) in the training data")
    return names


def label_ids(examples: Examples, names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(examples.labels) - set(index))
    if unknown:
        raise UserError(f"{examples.source}: label {unknown[0]!r} is not one of the model's labels "
                        f"({', '.join(names)})")
    return np.asarray([index[label] for label in examples.labels], dtype=np.int64)


def split_stats(splits: dict[str, Examples]) -> tuple[dict[str, dict], dict]:
    """What reading found, per split: examples, repaired texts, what the reader skipped, and
    `duplicates` (rows repeating an earlier row's text in the split), `shared_with_other_splits`
    (distinct texts also in another split), `conflicting_labels` (distinct texts that carry more
    than one label across all splits). Across splits: texts each pair of splits shares and the
    number of texts with conflicting labels. Sets of the texts already in memory: hashing, no copies."""
    keys = {name: example_keys(examples) for name, examples in splits.items()}
    labels_of = defaultdict(set)
    for name, examples in splits.items():
        for key, label in zip(keys[name], examples.labels):
            labels_of[key].add(label)
    conflicting = {key for key, labels in labels_of.items() if len(labels) > 1}
    distinct = {name: set(k) for name, k in keys.items()}
    stats = {}
    for name, examples in splits.items():
        elsewhere = set().union(*(distinct[other] for other in splits if other != name))
        stats[name] = {"examples": len(examples), "texts_repaired": count_repaired(examples.texts),
                       **examples.stats, "duplicates": len(keys[name]) - len(distinct[name]),
                       "shared_with_other_splits": len(distinct[name] & elsewhere),
                       "conflicting_labels": len(distinct[name] & conflicting)}
    across = {"shared": {f"{a}/{b}": len(distinct[a] & distinct[b]) for a, b in combinations(splits, 2)},
              "conflicting_labels": len(conflicting)}
    return stats, across


def describe_across(across: dict) -> str:
    shared = ", ".join(f"{pair} {n}" for pair, n in across["shared"].items())
    return f"texts shared between splits: {shared}; texts with conflicting labels: {across['conflicting_labels']}"


def build_datasets(data_cfg, transform, splits: dict | None = None
                   ) -> tuple[dict[str, ClassificationDataset], list[str], dict]:
    """Returns datasets per split, the label names (id order) and reading stats for the log.
    `splits`: read_splits(data_cfg), when the caller has already read them."""
    splits = read_splits(data_cfg) if splits is None else splits
    names = label_names(data_cfg, splits["train"])
    stats, across = split_stats(splits)
    if any(across["shared"].values()) or across["conflicting_labels"]:
        # A test text also seen in training inflates test scores; conflicting labels cap accuracy.
        log.warning(describe_across(across))
    datasets = {}
    for split, examples in splits.items():
        datasets[split] = ClassificationDataset(examples.texts, label_ids(examples, names), transform,
                                                examples.texts_b)
        stats[split] = {"examples": len(examples), "truncated": datasets[split].n_truncated, **stats[split]}
    return datasets, names, stats
