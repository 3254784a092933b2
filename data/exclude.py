"""data.exclude: training examples to leave out, listed in a CSV such as research/audit.py's label_issues.csv.

Only the training split loses rows, after the splits and folds are made: validation and test stay as
they are, so the scores compare with those of a run on the uncleaned data. Texts match exactly as the
readers read them, no normalisation. Single-label, a training row goes when its text is listed with its
label as `given` (the same text under another label stays); multi-label, when its text is listed (the
audit writes one row per flagged label, `given` then being 'present' or 'absent').
"""
import csv  # data.readers, imported below, raises csv.field_size_limit for texts past 128 KiB
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError
from data.labels import check_unique_columns
from data.readers import Examples

TEXT, GIVEN = "text", "given"
log = logging.getLogger(__name__)


@dataclass
class Listed:
    """The CSV's rows: texts and, where the file has the column, their given labels, with line numbers."""
    path: Path
    lines: list[int]
    texts: list[str]
    given: list[str] | None


def read_listed(path) -> Listed:
    """The whole file, read before any row is dropped: a bad row fails the run, never half of it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data.exclude={path}: file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a BOM (Excel's UTF-8 CSV) is accepted
    except UnicodeDecodeError as e:
        line = raw[:e.start].decode("utf-8", errors="replace").count("\n") + 1
        raise UserError(f"{path}:{line}: invalid UTF-8 byte 0x{raw[e.start]:02x} (data.exclude files are read as "
                        "UTF-8)") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [cell.strip() for cell in next(reader, [])]
    if not any(header):
        raise UserError(f"{path}: file is empty (data.exclude needs a header with a {TEXT!r} column)")
    check_unique_columns(header, [TEXT, GIVEN], f"{path}:1")
    if TEXT not in header:
        raise UserError(f"{path}:1: no column {TEXT!r} in header ({', '.join(header)}); data.exclude matches "
                        "training texts by it")
    text_at, given_at = header.index(TEXT), header.index(GIVEN) if GIVEN in header else None
    lines, texts, given = [], [], []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UserError(f"{path}:{reader.line_num}: {len(row)} fields, header has {len(header)}")
        if not row[text_at].strip():  # the audit writes "" when no examples.jsonl gave it the texts
            raise UserError(f"{path}:{reader.line_num}: empty {TEXT!r}, which matches no example")
        lines.append(reader.line_num)
        texts.append(row[text_at])
        given.append(row[given_at].strip() if given_at is not None else "")  # labels are stripped as the readers do
    return Listed(path, lines, texts, given if given_at is not None else None)


def listed_keys(listed: Listed, multi_label: bool, labels: set[str]) -> set:
    """What a training row must match: its text, or single-label its (text, label), each a known label."""
    if multi_label:
        return set(listed.texts)
    if listed.given is None:
        raise UserError(f"{listed.path}:1: no column {GIVEN!r}: single-label data drops a listed text only under "
                        "its given label, so the file must say which")
    for line, label in zip(listed.lines, listed.given):
        if label not in labels:
            raise UserError(f"{listed.path}:{line}: column {GIVEN!r} is {label!r}, not one of the data's labels "
                            f"({', '.join(sorted(labels))})")
    return set(zip(listed.texts, listed.given))


def drop_listed(train: Examples, listed: Listed, labels: set[str]) -> Examples:
    """The training split without the listed examples; stats["excluded"] counts the rows dropped.
    `labels`: every label of the data, which a single-label file's `given` must be one of."""
    if train.texts_b is not None:  # checked with the config too; readers are also called directly
        raise UserError(f"data.exclude={listed.path}: not for sentence-pair data (the audit's text column "
                        "joins the pair, so it matches no single text exactly)")
    keys = listed_keys(listed, train.multi_label, labels)
    row_keys = train.texts if train.multi_label else list(zip(train.texts, train.labels))
    kept = [i for i, key in enumerate(row_keys) if key not in keys]
    if not kept:
        raise UserError(f"data.exclude={listed.path}: lists every training example ({train.source})")
    remaining = train.subset(kept)
    remaining.stats = {**train.stats, "excluded": len(train) - len(kept)}
    log.info("data.exclude: dropped %d training examples of the %d listed (%d listed texts not in the training "
             "split: validation/test or absent)", len(train) - len(kept), len(keys), len(keys - set(row_keys)))
    return remaining
