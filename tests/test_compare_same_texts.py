"""research.compare proves the examples are the same: prediction files keep a digest of their split's texts,
and two files whose texts differ are refused in one line, even when their size and gold labels line up.
Files written before the digest existed are compared with a note saying what could not be checked."""
import numpy as np
import pytest

from data.digest import texts_digest
from evaluation.predictions import Predictions, read_predictions, write_predictions
from research.compare import main

GOLD = np.arange(20) % 2


def write(path, texts, predicted=GOLD):
    logits = np.eye(2, dtype=np.float32)[predicted] * 3
    write_predictions(path, Predictions(np.arange(20), GOLD, predicted, logits / 3, logits, ["no", "yes"],
                                        texts_sha256=None if texts is None else texts_digest(texts)))
    return str(path)


TEXTS = [f"text {i}" for i in range(20)]


def test_the_texts_digest_is_kept_in_the_predictions_file(tmp_path):
    assert read_predictions(write(tmp_path / "a.npz", TEXTS)).texts_sha256 == texts_digest(TEXTS)


def test_runs_on_different_texts_with_the_same_gold_labels_are_refused(tmp_path, capsys):
    a = write(tmp_path / "a.npz", TEXTS)
    b = write(tmp_path / "b.npz", [t.upper() for t in TEXTS])
    with pytest.raises(SystemExit) as refused:
        main([a, b])
    err = capsys.readouterr()
    assert refused.value.code == 2 and err.out == ""
    assert err.err.startswith(f"error: {a} and {b} were predicted on different texts (texts sha256 ")
    assert err.err.count("\n") == 1


def test_runs_on_the_same_texts_are_compared(tmp_path, capsys):
    predicted = GOLD.copy()
    predicted[:3] = 1 - predicted[:3]
    main([write(tmp_path / "a.npz", TEXTS), write(tmp_path / "b.npz", list(TEXTS), predicted)])
    out, err = capsys.readouterr()
    assert "accuracy" in out and err == ""


def test_a_file_without_a_digest_is_compared_with_a_note(tmp_path, capsys):
    old = write(tmp_path / "old.npz", None)
    main([old, write(tmp_path / "new.npz", TEXTS)])
    out, err = capsys.readouterr()
    assert "accuracy" in out
    assert err == (f"note: {old} records no digest of its texts (written before research.compare checked them): "
                   "the examples are matched by count, order and gold labels only\n")


def test_texts_digest_sees_order_pairs_and_boundaries():
    assert texts_digest(["ab", "c"]) != texts_digest(["a", "bc"])
    assert texts_digest(["a", "b"]) != texts_digest(["b", "a"])
    assert texts_digest(["a"], ["b"]) != texts_digest(["a"], ["c"]) != texts_digest(["a"])
