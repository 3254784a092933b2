"""Readers for labelled text files (JSONL, CSV/TSV, delimited TXT without header, XLSX) and splits.

A file is single-label (one name per text) or multi-label (a tuple of names per text: JSONL lists,
or label cells joined by data.label_delimiter). Every problem a user can cause is reported as
`file:line: what` in one line (UserError).
"""
import codecs
import csv
import io
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.checks import check_encoding
from common.errors import UserError
from data.labels import (check_label_value, check_unique_columns, checked_text, json_object_without_repeated_keys,
                         missing_label)

REPLACEMENT_CHAR = "\ufffd"
log = logging.getLogger(__name__)
# csv's default field limit (128 KiB) would refuse a long text that JSONL reads; the largest value the C
# long underneath accepts on every platform.
csv.field_size_limit(2**31 - 1)


@dataclass
class Examples:
    texts: list[str]
    # label names as written in the file ("" when the file has no labels); multi-label: a tuple of
    # names per text (stripped, no repeats, in file order; empty only with data.allow_empty_labels)
    labels: list[str] | list[tuple[str, ...]]
    source: str
    texts_b: list[str] | None = None  # second sentence of a pair
    stats: dict = field(default_factory=dict)  # what reading the file skipped, for the run log
    multi_label: bool = False

    def __len__(self):
        return len(self.texts)

    def subset(self, idx, source=None) -> "Examples":
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return Examples(pick(self.texts), pick(self.labels), source or self.source,
                        pick(self.texts_b) if self.texts_b is not None else None, multi_label=self.multi_label)


def decode(raw: bytes, path: Path, errors: str, encoding: str = "utf-8") -> str:
    """Decoding in data.encoding with a stated policy: 'strict' fails naming the line, 'replace' puts
    U+FFFD for each bad byte (count them afterwards with `count_repaired`). UTF-8 accepts a BOM; UTF-16
    and UTF-32 read theirs."""
    codec = python_codec(encoding)
    if codec == "utf-8":
        codec = "utf-8-sig"
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as e:
        if errors == "strict":
            raise UserError(undecodable(raw, path, codec, e)) from None
    return raw.decode(codec, errors="replace")


def python_codec(encoding: str) -> str:
    check_encoding(encoding)  # already checked with the config; readers are also called directly
    return codecs.lookup(encoding).name


# Where UTF-8 fails, what Korean files usually are: Excel's "Unicode text" (UTF-16 with a BOM) and the
# Korean Windows code page (CP949, a superset of EUC-KR), in which public AI Hub copies are distributed.
LIKELY_ENCODINGS = (("utf-16", "UTF-16 with a byte order mark (Excel's Unicode text)"),
                    ("cp949", "CP949 / EUC-KR (Korean Windows, Excel's CSV)"))


def undecodable(raw: bytes, path: Path, codec: str, e: UnicodeDecodeError) -> str:
    line = raw[:e.start].decode(codec, errors="replace").count("\n") + 1
    if codec != "utf-8-sig":
        return (f"{path}:{line}: byte 0x{raw[e.start]:02x} is not valid {codec} (set data.encoding to the file's "
                "encoding, or data.decode_errors=replace to repair such bytes)")
    for candidate, described in LIKELY_ENCODINGS:
        if candidate == "utf-16" and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            continue
        try:
            text = raw.decode(candidate)
        except UnicodeDecodeError:
            continue
        sample = text.split("\n")[line - 1].strip()[:40]  # the user can see whether it reads as Korean
        return (f"{path}:{line}: not UTF-8, but the whole file decodes as {described}, line {line} reading "
                f"{sample!r}: set data.encoding={candidate}")
    return (f"{path}:{line}: invalid UTF-8 byte 0x{raw[e.start]:02x} "
            "(set data.decode_errors=replace to repair such bytes)")


def count_repaired(texts: list[str]) -> int:
    return sum(REPLACEMENT_CHAR in t for t in texts)


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    formats = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "txt", ".xlsx": "xlsx"}
    if suffix not in formats:
        raise UserError(f"{path}: cannot tell the format from '{suffix}' (set data.format to one of "
                        "jsonl, csv, tsv, txt, xlsx)")
    return formats[suffix]


def read_examples(path, text_column="text", label_column="label", text_b_column=None,
                  format="auto", delimiter=";", decode_errors="strict", empty_text="skip",
                  label_delimiter=None, multi_label=None, allow_empty_labels=False, encoding="utf-8",
                  empty_label="error") -> Examples:
    """Reads (text, label) rows. `txt` is header-less `text<delimiter>label`, split on the last delimiter.

    Multi-label when `multi_label` is true, or when it is None and the file holds JSONL lists of labels
    or `label_delimiter` is set: string labels are then split on `label_delimiter` (when set) and a
    plain string is a one-label tuple, so a JSONL file may mix lists and strings."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    fmt = detect_format(path) if format == "auto" else format
    readers = {"jsonl": _jsonl_rows, "csv": _csv_rows, "tsv": _csv_rows, "txt": _txt_rows, "xlsx": None}
    if fmt not in readers:
        raise UserError(f"data.format={fmt!r} is not one of {', '.join(readers)}")
    if label_delimiter and multi_label is False:
        raise UserError(f"data.label_delimiter={label_delimiter!r} splits a label cell into several labels, "
                        "but data.multi_label=false (set it to null or true, or data.label_delimiter=null)")
    if label_delimiter and fmt == "txt" and label_delimiter == delimiter:
        raise UserError(f"data.label_delimiter={label_delimiter!r} is also data.delimiter, which separates a txt "
                        "line's text from its labels: choose another")
    columns = [text_column, label_column] + ([text_b_column] if text_b_column else [])
    if fmt == "xlsx":  # binary: cells are already text, no decoding policy applies
        rows = _xlsx_rows(path, columns)
    else:
        text = decode(path.read_bytes(), path, decode_errors, encoding)
        rows = readers[fmt](text, path, columns, "\t" if fmt == "tsv" else "," if fmt == "csv" else delimiter)
    texts, raw_labels, line_numbers, texts_b, n_empty = [], [], [], [], 0
    for line_no, row in rows:
        if isinstance(row[0], str) and not row[0].strip():  # not a string at all: checked_text's error below
            if empty_text == "error":
                raise UserError(f"{path}:{line_no}: empty text (set data.empty_text=skip to skip such rows)")
            n_empty += 1
            continue
        check_label_value(row[1], f"{path}:{line_no}")
        texts.append(checked_text(row[0], f"{path}:{line_no}", text_column))
        raw_labels.append(row[1])
        line_numbers.append(line_no)
        if text_b_column:
            texts_b.append(checked_text(row[2], f"{path}:{line_no}", text_b_column))
    # Decided over the whole file: a list on its last line makes the strings above it one-label tuples.
    multi = multi_label if multi_label is not None else (
        bool(label_delimiter) or any(isinstance(value, list) for value in raw_labels))
    unlabelled = [] if multi else [i for i, value in enumerate(raw_labels) if missing_label(value)]
    if unlabelled:  # multi-label: an empty label set is label_set's business (data.allow_empty_labels)
        if empty_label != "skip":
            raise UserError(f"{path}:{line_numbers[unlabelled[0]]}: empty label (set data.empty_label=skip to skip "
                            "such rows)")
        keep = sorted(set(range(len(texts))) - set(unlabelled))
        texts, raw_labels, line_numbers = ([xs[i] for i in keep] for xs in (texts, raw_labels, line_numbers))
        texts_b = [texts_b[i] for i in keep] if text_b_column else texts_b
    if not texts:
        raise UserError(f"{path}: no examples (the file is empty or every text is empty)")
    if multi:
        labels = [label_set(value, f"{path}:{line_no}", label_delimiter, allow_empty_labels)
                  for value, line_no in zip(raw_labels, line_numbers)]
    else:
        labels = [single_label(value, f"{path}:{line_no}") for value, line_no in zip(raw_labels, line_numbers)]
    stats = {"empty_texts_skipped": n_empty, **({"empty_labels_skipped": len(unlabelled)} if unlabelled else {})}
    return Examples(texts, labels, str(path), texts_b if text_b_column else None, stats, multi_label=multi)


def single_label(value, where: str) -> str:
    if isinstance(value, list):  # only reached with data.multi_label=false: null would have detected it
        raise UserError(f"{where}: the label is a list ({json.dumps(value, ensure_ascii=False)}) but "
                        "data.multi_label=false (set it to null or true for multi-label data)")
    return str(value).strip()


def label_set(value, where: str, label_delimiter: str | None, allow_empty: bool) -> tuple[str, ...]:
    """One text's label names: a JSONL list as it is, a string split on `label_delimiter` (when set)."""
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                raise UserError(f"{where}: label {json.dumps(item, ensure_ascii=False)} in the label list "
                                "is not a string")
        names = value
    elif value is None:  # JSON null: no label
        names = []
    else:
        names = str(value).split(label_delimiter) if label_delimiter else [str(value)]
    # dict.fromkeys: drops repeats, keeps the file's order
    labels = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
    if not labels and not allow_empty:
        raise UserError(f"{where}: empty label list (set data.allow_empty_labels=true to keep texts "
                        "without any label)")
    return labels


def _lines(text):
    """Numbered lines split on \n only: str.splitlines would also split on U+0085, U+2028 and other
    characters that appear raw inside JSON strings and tweets. One line at a time, not a list of them all:
    a huge line is copied once, while it is parsed."""
    start, line_no = 0, 1
    while start <= len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        yield line_no, text[start:end].removesuffix("\r")
        start, line_no = end + 1, line_no + 1


def _jsonl_rows(text, path, columns, _delimiter):
    for line_no, line in _lines(text):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=lambda pairs: json_object_without_repeated_keys(
                pairs, f"{path}:{line_no}"))
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{line_no}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{line_no}: expected a JSON object per line")
        missing = [c for c in columns if c not in obj]
        if missing:
            raise UserError(f"{path}:{line_no}: no key {missing[0]!r} (keys: {', '.join(obj)}); "
                            "set data.text_column / data.label_column")
        yield line_no, [obj[c] for c in columns]


def _csv_rows(text, path, columns, delimiter):
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise UserError(f"{path}: file is empty")
    header = [h.strip() for h in header]
    check_unique_columns(header, columns, f"{path}:1")
    missing = [c for c in columns if c not in header]
    if missing:
        raise UserError(f"{path}:1: no column {missing[0]!r} in header ({', '.join(header)}); "
                        "set data.text_column / data.label_column")
    where = [header.index(c) for c in columns]
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UserError(f"{path}:{reader.line_num}: {len(row)} fields, header has {len(header)}")
        yield reader.line_num, [row[i] for i in where]


def _xlsx_rows(path, columns):
    """First sheet, header in row 1 (the AIHub Korean emotion set: Sentence, Emotion). Read-only mode
    streams rows instead of loading the workbook into memory."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # zipfile.BadZipFile, KeyError, InvalidFileException: not a readable workbook
        raise UserError(f"{path}: not a readable .xlsx workbook ({e})") from None
    try:
        rows = workbook.worksheets[0].iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        if not any(header):
            raise UserError(f"{path}: file is empty")
        check_unique_columns(header, columns, f"{path}:1")
        missing = [c for c in columns if c not in header]
        if missing:
            raise UserError(f"{path}:1: no column {missing[0]!r} in header ({', '.join(header)}); "
                            "set data.text_column / data.label_column")
        where = [header.index(c) for c in columns]
        for row_no, row in enumerate(rows, 2):
            cells = [_cell_text(row[i]) if i < len(row) else "" for i in where]
            if any(cells):
                yield row_no, cells
    finally:
        workbook.close()


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():  # label ids typed as numbers: 3.0 -> "3"
        return str(int(value))
    return str(value)


def _txt_rows(text, path, columns, delimiter):
    for line_no, line in _lines(text):
        if not line.strip():
            continue  # dair-ai's val.txt starts with a blank line
        text_part, sep, label = line.rpartition(delimiter)
        if not sep:
            raise UserError(f"{path}:{line_no}: no {delimiter!r} separating text and label")
        yield line_no, [text_part, label]


def stratified_split(examples: Examples, fractions: dict, seed: int) -> dict:
    """Splits one labelled set into named parts (e.g. train/validation/test) keeping class ratios.

    Multi-label sets are stratified by each text's rarest label (over the whole file), so that rare
    labels reach every part; when some label is too rare even for that, the split is random (seeded,
    so just as reproducible), with a warning."""
    names, sizes = list(fractions), np.asarray(list(fractions.values()), dtype=float)
    if abs(sizes.sum() - 1) > 1e-6:
        raise UserError(f"data.split fractions must sum to 1, got {dict(fractions)}")
    strata = rarest_labels(examples.labels) if examples.multi_label else examples.labels
    remaining, parts = np.arange(len(examples)), {}
    for k, name in enumerate(names[:-1]):
        share = sizes[k] / sizes[k:].sum()
        try:
            taken, remaining = split_off(remaining, share, seed, [strata[i] for i in remaining],
                                         examples.multi_label, examples.source)
        except ValueError as e:  # too few examples (of some class) for these fractions
            raise UserError(f"{examples.source}: cannot split {len(examples)} examples stratified by label into "
                            f"{', '.join(names)} ({e}); give more examples or data.validation/data.test files"
                            ) from None
        parts[name] = examples.subset(np.sort(taken), f"{examples.source} [{name}]")
    parts[names[-1]] = examples.subset(np.sort(remaining), f"{examples.source} [{names[-1]}]")
    return parts


def split_off(indices, share: float, seed: int, strata: list, random_fallback: bool, source: str):
    """(taken, rest) of `indices`, stratified by `strata`; with `random_fallback`, unstratified
    where stratifying is impossible (a stratum of one text, or more strata than a part has texts)."""
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(indices, train_size=share, random_state=seed, stratify=strata)
    except ValueError as e:
        if not random_fallback:
            raise
        log.warning("%s: cannot stratify by rarest label (%s); splitting at random (seeded)", source, e)
        return train_test_split(indices, train_size=share, random_state=seed)


def rarest_labels(label_sets: list[tuple[str, ...]]) -> list[str]:
    """Each text's least frequent label ("" for a text without labels); ties go to the first name
    in sorted order, so the strata do not depend on the order labels are written in."""
    frequency = Counter(name for labels in label_sets for name in labels)
    return [min(labels, key=lambda name: (frequency[name], name)) if labels else "" for labels in label_sets]
