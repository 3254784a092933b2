"""Class names as figure tick labels, for fonts that lack their script."""
from functools import cache


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
