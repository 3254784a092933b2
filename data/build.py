"""From the `data` config to train/validation/test datasets with a fixed label order."""
import numpy as np

from data.dataset import ClassificationDataset
from data.readers import Examples, count_repaired, read_examples, stratified_split
from engine.errors import UserError

SPLITS = ("train", "validation", "test")


def read_file(data_cfg, path) -> Examples:
    return read_examples(path, data_cfg.text_column, data_cfg.label_column, data_cfg.text_b_column,
                         data_cfg.format, data_cfg.delimiter, data_cfg.decode_errors, data_cfg.empty_text)


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
    return read_file(data_cfg, data_cfg[split]) if data_cfg.get(split) else read_splits(data_cfg)[split]


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


def build_datasets(data_cfg, transform) -> tuple[dict[str, ClassificationDataset], list[str], dict]:
    """Returns datasets per split, the label names (id order) and reading stats for the log."""
    splits = read_splits(data_cfg)
    names = label_names(data_cfg, splits["train"])
    datasets, stats = {}, {}
    for split, examples in splits.items():
        datasets[split] = ClassificationDataset(examples.texts, label_ids(examples, names), transform,
                                                examples.texts_b)
        stats[split] = {"examples": len(examples), "truncated": datasets[split].n_truncated,
                        "texts_repaired": count_repaired(examples.texts), **examples.stats}
    return datasets, names, stats
