"""Reading labelled files: formats, decoding policy, one-line errors naming file and line, splits."""
import json

import pytest

from data.readers import count_repaired, read_examples, stratified_split
from common.errors import UserError


def test_jsonl_csv_tsv_txt_read_the_same_examples(tmp_path):
    rows = [("he said \"hi\", then left", "joy"), ("a;b;c", "anger")]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in rows))
    (tmp_path / "d.csv").write_text('text,label\n"he said ""hi"", then left",joy\n"a;b;c",anger\n')
    (tmp_path / "d.tsv").write_text('label\ttext\njoy\the said "hi", then left\nanger\ta;b;c\n')
    (tmp_path / "d.txt").write_text('\nhe said "hi", then left;joy\na;b;c;anger\n')  # leading blank line as in val.txt
    for name in ("d.jsonl", "d.csv", "d.tsv", "d.txt"):
        ex = read_examples(tmp_path / name)
        assert list(zip(ex.texts, ex.labels)) == rows, name


def test_real_dair_ai_raw_files_read(shared_datasets):
    ex = read_examples(shared_datasets / "emotion" / "raw" / "val.txt")
    assert len(ex) == 2000 and set(ex.labels) == {"sadness", "joy", "love", "anger", "fear", "surprise"}


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"nope\.jsonl: file not found"):
        read_examples(tmp_path / "nope.jsonl")


def test_empty_file(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(UserError, match="e.csv: file is empty"):
        read_examples(tmp_path / "e.csv")


def test_missing_column_names_the_header(tmp_path):
    (tmp_path / "d.csv").write_text("sentence,emotion\nhello,joy\n")
    with pytest.raises(UserError, match=r"d.csv:1: no column 'text' in header \(sentence, emotion\)"):
        read_examples(tmp_path / "d.csv")
    ex = read_examples(tmp_path / "d.csv", text_column="sentence", label_column="emotion")
    assert ex.texts == ["hello"]


def test_bad_json_line_is_named(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", \n')
    with pytest.raises(UserError, match=r"d.jsonl:2: not valid JSON"):
        read_examples(tmp_path / "d.jsonl")


def test_undecodable_bytes_strict_names_the_line(tmp_path):
    (tmp_path / "d.csv").write_bytes(b"text,label\nfine,a\nbad \x8a byte,b\n")
    with pytest.raises(UserError, match=r"d.csv:3: invalid UTF-8 byte 0x8a"):
        read_examples(tmp_path / "d.csv")


def test_undecodable_bytes_replaced_and_counted(tmp_path):
    (tmp_path / "d.csv").write_bytes(b"text,label\nfine,a\nbad \x8a byte,b\nalso \xff\xfe,b\n")
    ex = read_examples(tmp_path / "d.csv", decode_errors="replace")
    assert ex.texts[1] == "bad \ufffd byte" and count_repaired(ex.texts) == 2


def test_empty_texts_skipped_and_counted_or_refused(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\nfine,a\n  ,b\nok,b\n")
    ex = read_examples(tmp_path / "d.csv")
    assert ex.texts == ["fine", "ok"] and ex.stats["empty_texts_skipped"] == 1
    with pytest.raises(UserError, match=r"d.csv:3: empty text"):
        read_examples(tmp_path / "d.csv", empty_text="error")


def test_stratified_split_is_disjoint_reproducible_and_keeps_ratios(tmp_path):
    rows = [{"text": f"t{i}", "label": "a" if i % 4 else "b"} for i in range(400)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ex = read_examples(tmp_path / "d.jsonl")
    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    parts = stratified_split(ex, fractions, seed=3)
    assert [len(p) for p in parts.values()] == [320, 40, 40]
    assert set().union(*(set(p.texts) for p in parts.values())) == set(ex.texts)
    assert sum(len(p) for p in parts.values()) == 400
    assert parts["test"].labels.count("b") == 10
    assert stratified_split(ex, fractions, seed=3)["test"].texts == parts["test"].texts
    assert stratified_split(ex, fractions, seed=4)["test"].texts != parts["test"].texts


def test_xlsx_reads_header_columns_and_numeric_labels(tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Sentence", "Emotion"])
    sheet.append(["언니 동생으로 부르는게 맞는 일인가요..??", "공포"])
    sheet.append([None, None])  # blank row in the middle
    sheet.append(["정말 행복해요 😀", 3])  # a label typed as a number
    workbook.save(tmp_path / "d.xlsx")
    ex = read_examples(tmp_path / "d.xlsx", text_column="Sentence", label_column="Emotion")
    assert ex.texts == ["언니 동생으로 부르는게 맞는 일인가요..??", "정말 행복해요 😀"] and ex.labels == ["공포", "3"]
    with pytest.raises(UserError, match=r"d.xlsx:1: no column 'text' in header \(Sentence, Emotion\)"):
        read_examples(tmp_path / "d.xlsx")


def test_real_korean_xlsx_reads(shared_datasets):
    path = next((shared_datasets / "korean_emotion").glob("*.xlsx"))
    ex = read_examples(path, text_column="Sentence", label_column="Emotion")
    assert len(ex) == 38594 and len(set(ex.labels)) == 7
