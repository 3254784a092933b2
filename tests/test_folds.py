"""Cross-validation folds (data/folds.py, data.folds / data.fold): every example of the training pool in
exactly one fold, each label spread evenly over the folds, the test split untouched."""
from collections import Counter

import numpy as np
import pytest
from omegaconf import OmegaConf

from common import checks
from common.errors import UserError
from data.build import read_split, read_splits
from data.folds import fold_of_each


def spread(label_sets, fold, folds) -> dict:
    """label -> its count in each fold."""
    return {name: np.bincount([fold[i] for i, labels in enumerate(label_sets) if name in labels], minlength=folds)
            for name in {n for labels in label_sets for n in labels}}


def test_single_label_folds_are_stratified_balanced_and_seeded():
    labels = [(name,) for name in ["a"] * 53 + ["b"] * 31 + ["c"] * 7 + ["d"] * 3]
    fold = fold_of_each(labels, 5, seed=1)
    assert sorted(set(fold)) == [0, 1, 2, 3, 4]
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= 1  # 94 examples: 19, 19, 19, 19, 18
    for name, counts in spread(labels, fold, 5).items():
        assert counts.max() - counts.min() <= 1, (name, counts)
    assert np.array_equal(fold, fold_of_each(labels, 5, seed=1))
    assert not np.array_equal(fold, fold_of_each(labels, 5, seed=2))


def test_multi_label_folds_spread_every_label_including_the_rare_ones():
    rng = np.random.default_rng(0)
    names = ["common", "mid", "rare", "rarer"]
    rates = [0.6, 0.25, 0.06, 0.03]
    label_sets = [tuple(n for n, r in zip(names, rates) if rng.random() < r) for _ in range(400)]
    fold = fold_of_each(label_sets, 4, seed=3)
    assert np.bincount(fold, minlength=4).min() >= 95
    for name, counts in spread(label_sets, fold, 4).items():
        assert counts.max() - counts.min() <= 2, (name, counts)
    assert all(fold >= 0)  # texts without labels are dealt too


def folded_config(tiny_data, fold, folds=5, **extra):
    return OmegaConf.create({"train": str(tiny_data["train"]), "validation": str(tiny_data["validation"]),
                             "test": str(tiny_data["test"]), "format": "auto", "text_column": "text",
                             "label_column": "label", "text_b_column": None, "delimiter": ";",
                             "decode_errors": "strict", "empty_text": "skip", "labels": None,
                             "split": {"train": 0.8, "validation": 0.1, "test": 0.1}, "split_seed": 1234,
                             "folds": folds, "fold": fold, **extra})


def test_folds_deal_train_and_validation_and_keep_the_test_split(tiny_data):
    plain = read_splits(folded_config(tiny_data, None, folds=None))
    pool = plain["train"].texts + plain["validation"].texts
    held_out = []
    for fold in range(5):
        splits = read_splits(folded_config(tiny_data, fold))
        assert splits["test"].texts == plain["test"].texts
        assert sorted(splits["train"].texts + splits["validation"].texts) == sorted(pool)
        assert len(splits["validation"]) == len(pool) // 5  # 300 examples, 60 a fold
        counts = Counter(splits["validation"].labels)
        assert max(counts.values()) - min(counts.values()) <= 1  # 3 classes, 20 each
        held_out += splits["validation"].texts
        assert read_split(folded_config(tiny_data, fold), "validation").texts == splits["validation"].texts
        assert read_split(folded_config(tiny_data, fold), "train").texts == splits["train"].texts
    assert Counter(held_out) == Counter(pool)  # every pool example validated exactly once


def test_folds_carved_from_one_file_keep_the_usual_test_split(tiny_data):
    one_file = {"validation": None, "test": None}
    plain = read_splits(folded_config(tiny_data, None, folds=None, **one_file))
    folded = read_splits(folded_config(tiny_data, 2, folds=3, **one_file))
    assert folded["test"].texts == plain["test"].texts
    assert sorted(folded["train"].texts + folded["validation"].texts) == sorted(
        plain["train"].texts + plain["validation"].texts)


def test_more_folds_than_examples_is_refused_in_one_line(tmp_path):
    (tmp_path / "t.jsonl").write_text("".join(f'{{"text": "t{i}", "label": "{"ab"[i % 2]}"}}\n' for i in range(4)))
    cfg = folded_config({"train": tmp_path / "t.jsonl", "validation": tmp_path / "t.jsonl",
                         "test": tmp_path / "t.jsonl"}, 0, folds=9)
    with pytest.raises(UserError, match=r"8 examples cannot make data.folds=9 folds"):
        read_splits(cfg)


@pytest.mark.parametrize("folds, fold, message", [
    (None, 2, "data.fold=2 needs data.folds"), (5, None, "data.fold=None must be set with data.folds=5"),
    (5, 5, r"data.fold=5 must be in \[0, 5\)"), (1, 0, "data.folds=1 must be at least 2")])
def test_fold_keys_that_do_not_fit_are_refused(folds, fold, message):
    with pytest.raises(UserError, match=message):
        checks.check_folds(OmegaConf.create({"folds": folds, "fold": fold}))
