"""Terminal columns of a string, for aligning Korean (and mixed) label names: a Hangul syllable or
any East Asian wide character takes two columns, a combining mark or a conjoining vowel/final jamo
(Hangul written decomposed, NFD) none."""
import unicodedata


def display_width(text: str) -> int:
    return sum(char_width(c) for c in text)


def char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Me", "Mn", "Cf") or "\u1160" <= char <= "\u11ff":
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def pad_to_width(text: str, width: int) -> str:
    """`text` left-aligned in `width` terminal columns (str.ljust counts characters, not columns)."""
    return text + " " * max(0, width - display_width(text))
