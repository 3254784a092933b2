"""Near-duplicates across splits (data/near_duplicates.py): texts equal once case, width, spacing,
punctuation and emoji are set aside, counted per pair of splits apart from the exact shares, and
printed by `python -m data.report`."""
import sys
import unicodedata

import pytest

from data.build import read_splits, split_stats
from data.near_duplicates import NOT_LETTER_OR_DIGIT, near_duplicates, normal_key, normalise
from data.readers import Examples
from tests.conftest import run_script, write_jsonl
from tests.test_report import data_config


@pytest.mark.parametrize("a, b", [("I feel GREAT!!", "i feel great"),
                                  ("정말 행복해요 ㅎㅎ", "정말행복해요ㅎㅎ"),
                                  ("Ｈａｐｐｙ　ｄａｙ 😀", "happy day"),  # full-width letters and space (NFKC), emoji
                                  ("STRASSE\t№ 5", "straße no5")])  # casefold ß, NFKC №
def test_texts_that_differ_only_in_case_width_spacing_punctuation_or_emoji_normalise_alike(a, b):
    assert normalise(a) == normalise(b)


def test_letters_and_digits_of_every_script_stay_and_nothing_else_does():
    # Hangul syllables and jamo are letters; NFKC turns the compatibility jamo ㅎ (U+314E) into ᄒ (U+1112)
    assert normalise("정말 행복해요 ㅎㅎ") == "정말행복해요\u1112\u1112"
    assert normalise("Café_au-lait, 2 ٣!") == "caféaulait2٣"  # "_" is not a letter; Arabic-Indic ٣ is a digit
    assert normalise("happy") != normalise("happier")


def test_the_pattern_keeps_exactly_unicode_letters_and_digits():
    kept = [c for c in map(chr, range(sys.maxunicode + 1)) if not NOT_LETTER_OR_DIGIT.fullmatch(c)]
    assert kept == [c for c in map(chr, range(sys.maxunicode + 1)) if unicodedata.category(c)[0] in "LN"]


def test_a_text_of_only_punctuation_or_emoji_is_never_a_near_duplicate():
    assert normal_key("?!... 😀") is None and normal_key(("!!", "  ")) is None
    assert normal_key(("Is it?", "!!")) == ("isit", "")
    found = near_duplicates({"train": Examples(["!!!", "ok"], ["a", "b"], "train"),
                             "test": Examples(["???", "fine"], ["a", "b"], "test")})
    assert found == {"train/test": {"count": 0, "examples": []}}


def test_sentence_pairs_are_near_duplicates_only_when_both_texts_are():
    train = Examples(["Is it cold?", "Is it cold?"], ["x", "y"], "train", texts_b=["It is.", "No"])
    test = Examples(["is it cold", "IS IT COLD"], ["x", "y"], "test", texts_b=["it is", "not at all"])
    assert near_duplicates({"train": train, "test": test}) == {
        "train/test": {"count": 1, "examples": [(("Is it cold?", "It is."), ("is it cold", "it is"))]}}


# Planted across the splits: near-duplicates (case, punctuation, spacing, emoji), one exact share per
# pair beside them, a near copy of an exact share (already counted there) and texts of punctuation alone.
PLANTED = {
    "train": [("I feel GREAT!!", "joy"), ("so angry; so mad", "anger"), ("정말 행복해요 ㅎㅎ", "joy"),
              ("scared", "fear"), ("!!!", "joy"), ("happy day", "joy"), ("Happy day 😀", "joy")],
    "validation": [("i feel great", "joy"), ("so angry; so mad", "anger"), ("So angry, so mad!", "anger"),
                   ("???", "joy"), ("afraid", "fear"), ("terrified", "fear")],
    "test": [("정말행복해요ㅎㅎ", "joy"), ("HAPPY DAY.", "joy"), ("I feel great", "joy"), ("scared", "fear"),
             ("afraid", "fear")],
}
EXPECTED = {
    "train/validation": {"count": 1, "examples": [("I feel GREAT!!", "i feel great")]},
    "train/test": {"count": 3, "examples": [("I feel GREAT!!", "I feel great"), ("정말 행복해요 ㅎㅎ", "정말행복해요ㅎㅎ"),
                                             ("happy day", "HAPPY DAY.")]},
    "validation/test": {"count": 1, "examples": [("i feel great", "I feel great")]},
}


@pytest.fixture
def planted_files(tmp_path) -> dict:
    return {split: write_jsonl(tmp_path / f"{split}.jsonl", [{"text": t, "label": label} for t, label in rows])
            for split, rows in PLANTED.items()}


def test_planted_near_duplicates_are_found_once_and_apart_from_the_exact_shares(planted_files):
    splits = read_splits(data_config(*(f"data.{split}={path}" for split, path in planted_files.items())))
    _, across = split_stats(splits)
    assert across["shared"] == {"train/validation": 1, "train/test": 1, "validation/test": 1}
    assert near_duplicates(splits) == EXPECTED


def test_report_prints_the_near_duplicates_beside_the_shared_texts(planted_files, tiny_model_dir, tmp_path):
    result = run_script("-m", "data.report", "data=files", *(f"data.{s}={p}" for s, p in planted_files.items()),
                        f"model.path={tiny_model_dir}", f"out={tmp_path / 'report'}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    shared = next(i for i, line in enumerate(lines) if line.startswith("texts shared between splits:"))
    assert lines[shared + 1].startswith("near-duplicates between splits")
    assert "so they add to them" in lines[shared + 1]
    assert lines[shared + 1].endswith(": train/validation 1, train/test 3, validation/test 1")
    assert lines[shared + 2:shared + 7] == [
        "  train/validation: 'I feel GREAT!!' ~ 'i feel great'",
        "  train/test: 'I feel GREAT!!' ~ 'I feel great'",
        "  train/test: '정말 행복해요 ㅎㅎ' ~ '정말행복해요ㅎㅎ'",
        "  train/test: 'happy day' ~ 'HAPPY DAY.'",
        "  validation/test: 'i feel great' ~ 'I feel great'"]


def test_the_emotion_data_holds_one_near_duplicate(shared_datasets):
    # "didn t" in train, "didnt" in validation: the same tweet, tokenized differently
    splits = read_splits(data_config(f"shared_datasets={shared_datasets}", data="emotion"))
    found = near_duplicates(splits)
    assert {pair: n["count"] for pair, n in found.items()} == {"train/validation": 1, "train/test": 0,
                                                               "validation/test": 0}
    assert found["train/validation"]["examples"][0][1].startswith("i didnt think that it would come that fast")
