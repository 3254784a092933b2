"""From the `data` config to train/validation/test datasets with a fixed label order.

Single-label data gives class ids, multi-label data (data.multi_label) multi-hot rows: `label_ids`.
"""
import logging
from collections import defaultdict
from itertools import chain, combinations

import numpy as np

from data.dataset import ClassificationDataset
from data.exclude import drop_listed, read_listed
from data.folds import select_fold
from data.readers import Examples, count_repaired, read_examples, stratified_split
from common.errors import UserError
from data.labels import report_similar_labels

SPLITS = ("train", "validation", "test")
log = logging.getLogger(__name__)


def read_file(data_cfg, path) -> Examples:
    # .get: checkpoints trained before data.dedup and the multi-label keys existed store a data config without them
    examples = read_examples(path, data_cfg.text_column, data_cfg.label_column, data_cfg.text_b_column,
                             data_cfg.format, data_cfg.delimiter, data_cfg.decode_errors, data_cfg.empty_text,
                             label_delimiter=data_cfg.get("label_delimiter"),
                             multi_label=data_cfg.get("multi_label"),
                             allow_empty_labels=data_cfg.get("allow_empty_labels", False),
                             encoding=data_cfg.get("encoding", "utf-8"),
                             empty_label=data_cfg.get("empty_label", "error"))
    return drop_duplicates(examples) if data_cfg.get("dedup", False) else examples


def is_multi_label(examples: Examples) -> bool:
    return examples.multi_label


def as_multi_label(examples: Examples) -> Examples:
    """Single-label examples as one-label tuples (a validation file of plain labels beside multi-label
    training data)."""
    if examples.multi_label:
        return examples
    return Examples(examples.texts, [(label,) for label in examples.labels], examples.source, examples.texts_b,
                    examples.stats, multi_label=True)


def agree_on_multi_label(splits: dict[str, Examples]) -> dict[str, Examples]:
    """The training split decides: when multi-label, every split is; a multi-label split beside
    single-label training data is an error (its label sets would have no model output)."""
    train = splits["train"]
    if train.multi_label:
        return {name: as_multi_label(examples) for name, examples in splits.items()}
    for examples in splits.values():
        if examples.multi_label:
            raise UserError(f"{examples.source}: several labels per text, but the training data {train.source} "
                            "has one (set data.multi_label=true to train multi-label)")
    return splits


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


def read_splits(data_cfg, exclude: bool = True) -> dict[str, Examples]:
    """Reads the configured files; splits missing from the config are carved out of `train`
    (stratified, seeded by data.split_seed) so every run of a config sees the same split. With
    data.folds, train and validation together are the pool that data/folds.py deals into folds.
    data.exclude then drops its examples from the training split alone (data/exclude.py); `exclude`
    false skips that, for a caller that reads only validation or test."""
    if not data_cfg.train:
        raise UserError("data.train is not set (path of the training file)")
    # .get: configs saved before data.exclude existed; read first, so a bad file fails before the data is read
    listed = read_listed(data_cfg.exclude) if exclude and data_cfg.get("exclude") else None
    given = agree_on_multi_label({name: read_file(data_cfg, data_cfg[name]) for name in SPLITS if data_cfg.get(name)})
    missing = [name for name in SPLITS if name not in given]
    if missing:
        fractions = {name: float(data_cfg.split[name]) for name in ["train", *missing]}
        total = sum(fractions.values())
        whole_file = given["train"]
        given.update(stratified_split(whole_file, {k: v / total for k, v in fractions.items()},
                                      data_cfg.split_seed))
        given["train"].stats = whole_file.stats
    if data_cfg.get("folds"):  # .get: configs saved before cross-validation existed
        given["train"], given["validation"] = select_fold(given["train"], given["validation"], data_cfg.folds,
                                                          data_cfg.fold, data_cfg.split_seed)
    if listed is not None:  # last: validation, test and the folds are those of the run without data.exclude
        labels = set(data_cfg.labels or []).union(*(used_labels(examples) for examples in given.values()))
        given["train"] = drop_listed(given["train"], listed, labels)
    return {name: given[name] for name in SPLITS}


def used_labels(examples: Examples) -> set[str]:
    """Every label name the examples use."""
    return set(chain.from_iterable(examples.labels)) if examples.multi_label else set(examples.labels)


def read_split(data_cfg, split: str) -> Examples:
    """One split: its own file when configured, else carved out of train exactly as training did."""
    if split not in SPLITS:
        raise UserError(f"split={split!r} is not one of {', '.join(SPLITS)}")
    # data.train names the whole file that validation/test are carved from when they have no file of their own
    carved_from_train = split == "train" and not all(data_cfg.get(name) for name in SPLITS)
    folded = split != "test" and data_cfg.get("folds")  # train and validation are dealt from their pool
    excluded = split == "train" and data_cfg.get("exclude")  # the training split as training saw it
    if data_cfg.get(split) and not carved_from_train and not folded and not excluded:
        return read_file(data_cfg, data_cfg[split])
    # validation and test never lose rows to data.exclude: they are read without its file
    return read_splits(data_cfg, exclude=split == "train")[split]


def label_names(data_cfg, train: Examples) -> list[str]:
    """data.labels, else the sorted names found in train (multi-label: in any text's label set)."""
    found = used_labels(train)
    names = list(data_cfg.labels) if data_cfg.labels else sorted(found)
    if not found:  # multi-label with data.allow_empty_labels=true, every label set empty
        raise UserError(f"{train.source}: no text has a label in the training data")
    if len(found) < 2:
        raise UserError(f"{train.source}: only one class ({next(iter(found))!r}) in the training data")
    report_similar_labels(names, train.source)
    return names


def label_ids(examples: Examples, names: list[str], multi_label: bool | None = None) -> np.ndarray:
    """(N,) int64 class ids, or for multi-label (N, C) float32 multi-hot rows over `names`.
    `multi_label`: what the model is (None: what the examples are); single-label examples for a
    multi-label model count as one-label sets."""
    multi = examples.multi_label if multi_label is None else multi_label
    if multi and not examples.multi_label:
        examples = as_multi_label(examples)
    if examples.multi_label and not multi:
        raise UserError(f"{examples.source}: several labels per text, but the model gives one label per text")
    index = {name: i for i, name in enumerate(names)}
    found = set(chain.from_iterable(examples.labels)) if multi else set(examples.labels)
    unknown = sorted(found - set(index))
    if unknown:
        raise UserError(f"{examples.source}: label {unknown[0]!r} is not one of the model's labels "
                        f"({', '.join(names)})")
    if not multi:
        return np.asarray([index[label] for label in examples.labels], dtype=np.int64)
    rows = [row for row, labels in enumerate(examples.labels) for _ in labels]
    columns = [index[name] for labels in examples.labels for name in labels]
    multi_hot = np.zeros((len(examples), len(names)), dtype=np.float32)
    multi_hot[rows, columns] = 1
    return multi_hot


def split_stats(splits: dict[str, Examples]) -> tuple[dict[str, dict], dict]:
    """What reading found, per split: examples, repaired texts, what the reader skipped, and
    `duplicates` (rows repeating an earlier row's text in the split), `shared_with_other_splits`
    (distinct texts also in another split), `conflicting_labels` (distinct texts that carry more
    than one label, or multi-label more than one label set, across all splits). Across splits: texts
    each pair of splits shares and the number of texts with conflicting labels. Sets of the texts
    already in memory: hashing, no copies."""
    keys = {name: example_keys(examples) for name, examples in splits.items()}
    labels_of = defaultdict(set)
    for name, examples in splits.items():
        for key, label in zip(keys[name], examples.labels):
            # a label set, in whatever order the file lists it
            labels_of[key].add(frozenset(label) if isinstance(label, tuple) else label)
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
