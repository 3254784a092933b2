"""Near-duplicates across splits: texts of two splits that are equal once case, width, spacing,
punctuation, symbols and emoji are set aside, but are not exactly equal ("I feel GREAT!!" in train,
"i feel great" in test). Like the exact repeats that data/build.py split_stats counts, they let a
model be scored on texts it was trained on. Sets of the texts already in memory: hashing, no copies.
"""
import re
import unicodedata
from itertools import combinations

from data.build import example_keys
from data.readers import Examples

EXAMPLES_PER_PAIR = 5
# In a str pattern \w is a letter or digit of any script (Unicode categories L*/N*, exactly what
# str.isalnum() accepts) or "_": [\W_] is everything else. One C-level pass instead of a Python
# loop over characters, half the time on korean_emotion.
NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Unicode NFKC, casefold, then only letters and digits kept (categories L*/N*): punctuation,
    symbols, emoji and every kind of space go; Hangul, kana, CJK and accented letters stay."""
    return NOT_LETTER_OR_DIGIT.sub("", unicodedata.normalize("NFKC", text).casefold())


def normal_key(key: str | tuple) -> str | tuple | None:
    """A text or a (text, text_b) pair, normalised; None when nothing is left (a text of only
    punctuation or emoji matches too much to say anything)."""
    normal = normalise(key) if isinstance(key, str) else tuple(map(normalise, key))
    return normal if any(normal) else None


def first_of_each_normal_key(keys: list) -> dict:
    """normalised key -> the first text (pair) of the split that gives it."""
    first = {}
    for key in dict.fromkeys(keys):  # each distinct text normalised once
        normal = normal_key(key)
        if normal is not None:
            first.setdefault(normal, key)
    return first


def near_duplicates(splits: dict[str, Examples]) -> dict[str, dict]:
    """Per pair of splits ('train/test'): `count`, the normalised keys both splits hold that no exact
    shared text already accounts for (so the figure adds to split_stats' exact `shared`), and up to
    EXAMPLES_PER_PAIR `examples`, (text in the first split, text in the second), in first-split order."""
    keys = {name: example_keys(examples) for name, examples in splits.items()}
    first = {name: first_of_each_normal_key(k) for name, k in keys.items()}
    found = {}
    for a, b in combinations(splits, 2):
        exactly_shared = {normal_key(key) for key in set(keys[a]) & set(keys[b])}
        near = [normal for normal in first[a] if normal in first[b] and normal not in exactly_shared]
        found[f"{a}/{b}"] = {"count": len(near),
                             "examples": [(first[a][normal], first[b][normal]) for normal in near[:EXAMPLES_PER_PAIR]]}
    return found


def describe_near_duplicates(found: dict[str, dict]) -> list[str]:
    counts = ", ".join(f"{pair} {n['count']}" for pair, n in found.items())
    lines = [f"near-duplicates between splits (equal after NFKC, casefold and dropping all but letters and "
             f"digits; not among the shared texts above, so they add to them): {counts}"]
    for pair, n in found.items():
        # repr: the spaces and punctuation that tell the two texts apart stay visible
        lines += [f"  {pair}: {a!r} ~ {b!r}" for a, b in n["examples"]]
    return lines
