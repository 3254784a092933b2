"""What a label cell and a text cell must be, and label names that are probably one label spelt twice.

A label that is empty or JSON null is not a class: an error naming file:line, or with data.empty_label=skip
the row is skipped and counted. Texts must be strings (a JSONL number, list or null is an error naming the
line). Names that differ only in case, in whitespace or in how a number is written ("1" and "1.0",
"POSITIVE" and "positive") train as separate classes; that is reported, naming them."""
import json
import logging
import re
from collections import defaultdict

from common.errors import UserError

log = logging.getLogger(__name__)


def missing_label(value) -> bool:
    """Single-label: nothing there (JSON null, an empty or blank cell)."""
    return value is None or (isinstance(value, str) and not value.strip())


def checked_text(value, where: str, column: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{where}: {column!r} is {json.dumps(value, ensure_ascii=False)[:40]}, not a string; "
                        "texts must be strings")
    return value


def check_label_value(value, where: str):
    """A JSON object as a label is a mistake in the file, not a class name."""
    if isinstance(value, dict):
        raise UserError(f"{where}: the label {json.dumps(value, ensure_ascii=False)[:40]} is not a name or number")


def check_unique_columns(header: list[str], columns: list[str], where: str):
    """A header naming one column twice: which of them is the text? Never guess."""
    for column in columns:
        if header.count(column) > 1:
            raise UserError(f"{where}: column {column!r} appears {header.count(column)} times in the header "
                            f"({', '.join(header)}); rename the copies")


def json_object_without_repeated_keys(pairs, where: str) -> dict:
    """json.loads' object_pairs_hook: a repeated key would silently keep its last value."""
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise UserError(f"{where}: key {key!r} appears {keys.count(key)} times in the object")
    return dict(pairs)


def spelling(name: str) -> str:
    """The name with case, whitespace and the writing of a number taken out."""
    folded = re.sub(r"\s+", " ", name).strip().casefold()
    try:
        number = float(folded)
    except ValueError:
        return folded
    return repr(number) if number == number else folded  # NaN is no number to compare


def similar_labels(names) -> list[list[str]]:
    """Groups of two or more names that are the same but for case, whitespace or number spelling."""
    groups = defaultdict(list)
    for name in names:
        groups[spelling(name)].append(name)
    return [sorted(group) for group in groups.values() if len(group) > 1]


def report_similar_labels(names, source: str) -> list[list[str]]:
    groups = similar_labels(names)
    for group in groups:
        log.warning("%s: labels %s differ only in case, whitespace or number spelling and train as %d separate "
                    "classes; if they are one class, write them alike (or set data.labels)", source,
                    " and ".join(repr(name) for name in group), len(group))
    return groups
