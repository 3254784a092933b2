"""Class names as figure tick labels, for fonts that lack their script, and how many classes a figure draws."""
from functools import cache

# Classes a figure or printed matrix shows: one of 1,000 classes would need gigabytes to render and show
# nothing readable. Beyond this, the classes that matter most for that figure; metrics keep them all.
MAX_DRAWN_CLASSES = 30


@cache
def _font_charmap() -> frozenset:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(font_manager.findfont(font_manager.FontProperties())).get_charmap())


def plottable(labels: list[str]) -> list[str]:
    """Label names, or their ids where the plotting font has no glyph for them (Hangul without a
    CJK font installed would be drawn as boxes, with a warning per glyph; printed tables map ids to names)."""
    covered = _font_charmap()
    return [label if all(ord(c) in covered for c in label) else str(i) for i, label in enumerate(labels)]


def largest(values, limit: int = MAX_DRAWN_CLASSES) -> list[int]:
    """Ids of the (at most `limit`) largest values, in id order; every id when there are no more than `limit`."""
    order = sorted(range(len(values)), key=lambda i: -values[i])
    return sorted(order[:limit])
