"""Labels are checked for what they are: an empty or null label is an error naming file:line (or, with
data.empty_label=skip, skipped and counted), a non-string text is an error naming the line, a column named
twice is an error, and labels that differ only in case, whitespace or number spelling are reported."""
import logging

import pytest
from omegaconf import OmegaConf

from common.config import PROJECT_ROOT
from common.errors import UserError
from data.build import label_names, read_file
from data.readers import read_examples
from tests.conftest import write_jsonl


def data_cfg(**keys):
    base = OmegaConf.load(PROJECT_ROOT / "conf" / "data" / "base.yaml")
    del base["defaults"]
    return OmegaConf.merge(base, {"name": "t", **keys})


def write_csv(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_empty_label_cell_is_an_error_naming_file_and_line(tmp_path):
    path = write_csv(tmp_path / "t.csv", "text,label\ngood day,joy\nbad day,\nsad,fear\n")
    with pytest.raises(UserError, match=f"^{path}:3: empty label \\(set data.empty_label=skip"):
        read_file(data_cfg(), path)


def test_null_label_in_jsonl_is_an_error_naming_the_line(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "a", "label": "joy"}, {"text": "b", "label": None}])
    with pytest.raises(UserError, match=f"^{path}:2: empty label"):
        read_file(data_cfg(), path)


def test_empty_labels_are_skipped_and_counted_when_asked(tmp_path):
    path = write_csv(tmp_path / "t.csv", "text,label\ngood day,joy\nbad day,\nsad,fear\nmeh,  \n")
    examples = read_file(data_cfg(empty_label="skip"), path)
    assert examples.texts == ["good day", "sad"] and examples.labels == ["joy", "fear"]
    assert examples.stats["empty_labels_skipped"] == 2


@pytest.mark.parametrize("text", [12, None, ["a", "list"], {"a": 1}])
def test_text_that_is_not_a_string_is_an_error_naming_the_line(text, tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "fine", "label": "a"}, {"text": text, "label": "b"}])
    with pytest.raises(UserError, match=f"^{path}:2: 'text' is .*, not a string"):
        read_examples(path)


def test_label_that_is_an_object_is_an_error_naming_the_line(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "fine", "label": {"name": "a"}}])
    with pytest.raises(UserError, match=f"^{path}:1: the label .* is not a name or number"):
        read_examples(path)


@pytest.mark.parametrize("suffix, header", [(".csv", "text,label,text"), (".tsv", "text\tlabel\tlabel")])
def test_a_column_named_twice_is_an_error(suffix, header, tmp_path):
    separator = "\t" if suffix == ".tsv" else ","
    path = write_csv(tmp_path / f"t{suffix}", header + "\n" + separator.join(["a", "b", "c"]) + "\n")
    with pytest.raises(UserError, match=f"^{path}:1: column '(text|label)' appears 2 times in the header"):
        read_examples(path)


def test_a_repeated_key_in_a_jsonl_object_is_an_error(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "label": "x", "text": "b"}\n')
    with pytest.raises(UserError, match=f"^{path}:1: key 'text' appears 2 times"):
        read_examples(path)


def test_a_column_named_twice_in_xlsx_is_an_error(tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["text", "label", "label"])
    workbook.active.append(["hello", "a", "b"])
    workbook.save(tmp_path / "t.xlsx")
    with pytest.raises(UserError, match="t.xlsx:1: column 'label' appears 2 times"):
        read_examples(tmp_path / "t.xlsx")


@pytest.mark.parametrize("names, group", [
    (["1", "1.0", "2"], "'1' and '1.0'"),
    (["POSITIVE", "negative", "positive"], "'POSITIVE' and 'positive'"),
    (["very good", "very  good", "bad"], "'very  good' and 'very good'"),
])
def test_labels_differing_only_in_spelling_are_reported(names, group, tmp_path, caplog):
    rows = [{"text": f"text {i}", "label": name} for i, name in enumerate(names * 2)]
    train = read_examples(write_jsonl(tmp_path / "t.jsonl", rows))
    with caplog.at_level(logging.WARNING):
        assert label_names(data_cfg(), train) == sorted(names)  # still three classes: the user decides
    assert f"labels {group} differ only in case, whitespace or number spelling" in caplog.text


def test_distinct_labels_are_not_reported(tmp_path, caplog):
    rows = [{"text": f"text {i}", "label": name} for i, name in enumerate(["1", "10", "joy", "joyful"] * 2)]
    with caplog.at_level(logging.WARNING):
        label_names(data_cfg(), read_examples(write_jsonl(tmp_path / "t.jsonl", rows)))
    assert "differ only" not in caplog.text
