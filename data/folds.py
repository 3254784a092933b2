"""Cross-validation folds over the training pool: `data.folds=K data.fold=i`.

The pool is the training split and the validation split of the usual reading (data/build.py
read_splits), train's rows first; fold i of the pool becomes the validation split and the other K - 1
folds the training split. The test split is untouched, so fold runs' test numbers compare with any
other run's. The assignment depends only on the pool's labels, K and data.split_seed: every fold run
of a sweep, and research/folds.py joining their predictions afterwards, computes the same one.

Stratification is iterative (Sechidis, Tsoumakas & Vlahavas, ECML PKDD 2011), which covers both
kinds of labels: single-label examples are label sets of one. The rarest label's examples are dealt
first, each to the fold that still wants most of that label, so every fold gets within one example
of its share of every label, rare ones included.
"""
import numpy as np

from common.errors import UserError
from data.readers import Examples


def fold_of_each(label_sets: list[tuple], folds: int, seed: int) -> np.ndarray:
    """(N,) fold number of each example. Ties between folds go to the one that wants most examples
    overall, then to a seeded random choice."""
    n = len(label_sets)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)  # who is dealt first within a label: seeded, not file order
    names = sorted({name for labels in label_sets for name in labels})
    column = {name: j for j, name in enumerate(names)}
    members = [[] for _ in names]
    for i in order:
        for name in label_sets[i]:
            members[column[name]].append(i)
    wanted_examples = np.full(folds, n / folds)
    wanted_label = np.outer([len(m) for m in members], np.full(folds, 1 / folds))  # (labels, folds)
    remaining = np.asarray([len(m) for m in members])
    fold = np.full(n, -1)

    def deal(i: int, want: np.ndarray):
        best = np.flatnonzero(want == want.max())
        if len(best) > 1:
            overall = wanted_examples[best]
            best = best[overall == overall.max()]
        chosen = best[0] if len(best) == 1 else rng.choice(best)
        fold[i] = chosen
        wanted_examples[chosen] -= 1
        for name in label_sets[i]:
            wanted_label[column[name], chosen] -= 1
            remaining[column[name]] -= 1

    while remaining.any():
        rarest = int(np.argmin(np.where(remaining > 0, remaining, np.iinfo(remaining.dtype).max)))
        for i in members[rarest]:
            if fold[i] < 0:
                deal(i, wanted_label[rarest])
    for i in order:  # texts without any label (multi-label with data.allow_empty_labels)
        if fold[i] < 0:
            deal(i, wanted_examples)
    return fold


def label_sets(examples: Examples) -> list[tuple]:
    return list(examples.labels) if examples.multi_label else [(label,) for label in examples.labels]


def training_pool(train: Examples, validation: Examples) -> Examples:
    """Train's rows, then validation's: positions in this pool are what out-of-fold files index."""
    if (train.texts_b is None) != (validation.texts_b is None):
        raise UserError(f"{train.source} and {validation.source}: one has sentence pairs and the other not")
    texts_b = None if train.texts_b is None else train.texts_b + validation.texts_b
    return Examples(train.texts + validation.texts, list(train.labels) + list(validation.labels),
                    f"{train.source} + {validation.source}", texts_b, dict(train.stats), train.multi_label)


def pool_folds(pool: Examples, folds: int, seed: int) -> np.ndarray:
    if len(pool) < folds:
        raise UserError(f"{pool.source}: {len(pool)} examples cannot make data.folds={folds} folds")
    return fold_of_each(label_sets(pool), folds, seed)


def select_fold(train: Examples, validation: Examples, folds: int, fold: int, seed: int
                ) -> tuple[Examples, Examples]:
    """(training split, validation split) of fold `fold`: the pool without the fold, and the fold,
    each in pool order."""
    pool = training_pool(train, validation)
    assigned = pool_folds(pool, folds, seed)
    held_out = np.flatnonzero(assigned == fold)
    kept = pool.subset(np.flatnonzero(assigned != fold), f"{pool.source} [folds {folds}, without fold {fold}]")
    kept.stats = pool.stats
    return kept, pool.subset(held_out, f"{pool.source} [fold {fold} of {folds}]")
