"""Multi-label data: label sets from every file format, one-line errors, multi-hot ids, batches,
carved splits, the data report, and the real GoEmotions files through data=goemotions."""
import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from data.build import label_ids, label_names, read_splits, split_stats
from data.dataset import ClassificationDataset
from data.readers import Examples, read_examples, stratified_split
from data.report import describe, format_report, save_plots
from data.tokenizer import load_tokenizer
from data.transform import BERTSentenceTransform
from common.config import PROJECT_ROOT
from common.errors import UserError
from tests.conftest import write_jsonl

ROWS = [("i feel happy and loved", ["joy", "love"]), ("so scared", ["fear"]),
        ("angry, then happy", ["anger", "joy"])]
SETS = [("joy", "love"), ("fear",), ("anger", "joy")]


def data_config(*overrides, data="files"):
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("report", overrides=[f"data={data}", *overrides]).data


def write_delimited(path, rows, label_delimiter="|"):
    """(text, [labels]) rows in the format the suffix names, each label cell joined by `label_delimiter`."""
    cells = [(text, label_delimiter.join(labels)) for text, labels in rows]
    if path.suffix == ".xlsx":
        from openpyxl import Workbook

        workbook = Workbook()
        workbook.active.append(["text", "label"])
        for row in cells:
            workbook.active.append(list(row))
        workbook.save(path)
    elif path.suffix == ".jsonl":  # string labels, split like any other cell
        write_jsonl(path, [{"text": t, "label": label} for t, label in cells])
    elif path.suffix == ".txt":  # text;labels, no header
        path.write_text("".join(f"{t};{label}\n" for t, label in cells))
    else:
        import csv

        with open(path, "w", newline="") as f:
            writer = csv.writer(f, delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writerows([("text", "label"), *cells])
    return path


def test_jsonl_lists_are_label_sets_stripped_without_repeats_in_file_order(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "labels": [" joy", "love", "joy"]},
                                             {"text": "b", "labels": "fear"},  # a plain string among lists
                                             {"text": "c", "labels": ["anger", "joy"]}])
    ex = read_examples(path, label_column="labels")
    assert ex.multi_label and ex.labels == [("joy", "love"), ("fear",), ("anger", "joy")]
    assert ex.subset([2, 0]).multi_label and ex.subset([2, 0]).labels == [("anger", "joy"), ("joy", "love")]
    # data.multi_label=true: plain strings alone are one-label sets
    plain = write_jsonl(tmp_path / "p.jsonl", [{"text": "a", "label": "joy"}, {"text": "b", "label": "fear"}])
    assert read_examples(plain, multi_label=True).labels == [("joy",), ("fear",)]
    assert not read_examples(plain).multi_label and read_examples(plain).labels == ["joy", "fear"]


@pytest.mark.parametrize("suffix", ["csv", "tsv", "xlsx", "txt", "jsonl"])
def test_label_delimiter_splits_the_label_cell_in_every_format(suffix, tmp_path):
    path = write_delimited(tmp_path / f"d.{suffix}", [(t, [f" {labels[0]}", *labels]) for t, labels in ROWS])
    ex = read_examples(path, label_delimiter="|")
    assert ex.multi_label and ex.texts == [t for t, _ in ROWS] and ex.labels == SETS


def test_label_delimiter_contradicting_the_config_is_refused(tmp_path):
    path = write_delimited(tmp_path / "d.csv", ROWS, ",")
    with pytest.raises(UserError, match="label_delimiter=',' .* data.multi_label=false"):
        read_examples(path, label_delimiter=",", multi_label=False)
    with pytest.raises(UserError, match="also data.delimiter"):
        read_examples(write_delimited(tmp_path / "d.txt", ROWS, ";"), label_delimiter=";")


def test_empty_label_list_names_the_line_unless_allowed(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "labels": ["joy"]}, {"text": "b", "labels": []}])
    with pytest.raises(UserError, match=r"d\.jsonl:2: empty label list \(set data\.allow_empty_labels=true"):
        read_examples(path, label_column="labels")
    assert read_examples(path, label_column="labels", allow_empty_labels=True).labels == [("joy",), ()]
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("text,label\na,joy|fear\nb,\n")
    with pytest.raises(UserError, match=r"d\.csv:3: empty label list"):
        read_examples(csv_path, label_delimiter="|")


def test_a_list_where_the_config_says_single_label_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "labels": "joy"}, {"text": "b", "labels": ["joy"]}])
    with pytest.raises(UserError, match=r"d\.jsonl:2: the label is a list \(\[\"joy\"\]\) but data\.multi_label=false"):
        read_examples(path, label_column="labels", multi_label=False)


def test_a_label_that_is_not_a_string_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "labels": ["joy"]}, {"text": "b", "labels": ["joy", 3]}])
    with pytest.raises(UserError, match=r"d\.jsonl:2: label 3 in the label list is not a string"):
        read_examples(path, label_column="labels")


def test_label_ids_are_multi_hot_and_refuse_unknown_labels():
    ex = Examples(["a", "b", "c"], SETS, "d.jsonl", multi_label=True)
    names = label_names(data_config(), ex)
    assert names == ["anger", "fear", "joy", "love"]
    ids = label_ids(ex, names)
    assert ids.dtype == np.float32 and ids.tolist() == [[0, 0, 1, 1], [0, 1, 0, 0], [1, 0, 1, 0]]
    unknown = r"d\.jsonl: label 'love' is not one of the model's labels \(anger, fear, joy\)"
    with pytest.raises(UserError, match=unknown):
        label_ids(ex, ["anger", "fear", "joy"])
    # single-label examples for a multi-label model: one-label sets
    single = Examples(["a"], ["joy"], "s.jsonl")
    assert label_ids(single, names).dtype == np.int64
    assert label_ids(single, names, multi_label=True).tolist() == [[0, 0, 1, 0]]
    with pytest.raises(UserError, match="only one class \\('joy'\\)"):
        label_names(data_config(), Examples(["a", "b"], [("joy",), ("joy",)], "one.jsonl", multi_label=True))


def test_dataset_and_batches_carry_multi_hot_float_labels(tiny_model_dir):
    transform = BERTSentenceTransform(load_tokenizer(tiny_model_dir), 16)
    ex = Examples(["i feel happy", "so scared", "angry and happy"], SETS, "d", multi_label=True)
    dataset = ClassificationDataset(ex.texts, label_ids(ex, ["anger", "fear", "joy", "love"]), transform)
    batch = dataset.collate([2, 0])
    assert dataset.multi_label and batch.labels.shape == (2, 4) and batch.labels.dtype == torch.float32
    assert batch.labels.tolist() == [[1, 0, 1, 0], [0, 0, 1, 1]] and batch.token_ids.shape[0] == 2
    single = ClassificationDataset(ex.texts, None, transform)
    assert not single.multi_label and single.collate([0, 1]).labels.tolist() == [-1, -1]
    assert single.labels.dtype == np.int64


def test_splits_follow_the_training_file(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": labels} for t, labels in ROWS])
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"text": "glad", "label": "joy"}])
    splits = read_splits(data_config(f"data.train={train}", f"data.validation={plain}", f"data.test={plain}"))
    assert all(s.multi_label for s in splits.values()) and splits["test"].labels == [("joy",)]
    with pytest.raises(UserError, match=r"train\.jsonl: several labels per text, but the training data .*plain\.jsonl"):
        read_splits(data_config(f"data.train={plain}", f"data.validation={train}", f"data.test={plain}"))


def test_carved_multi_label_split_is_seeded_and_covers_every_row(tmp_path):
    rows = [{"text": f"text {i}", "labels": ["common", *(["rare"] if i % 10 == 0 else [])]} for i in range(200)]
    rows += [{"text": f"only {i}", "labels": ["other"]} for i in range(50)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    splits = read_splits(data_config(f"data.train={path}", "data.label_column=labels", "data.split_seed=7"))
    assert sorted(t for s in splits.values() for t in s.texts) == sorted(r["text"] for r in rows)
    assert [len(s) for s in splits.values()] == [200, 25, 25] and all(s.multi_label for s in splits.values())
    # stratified by rarest label: the 20 texts with "rare" (rarer than "common") spread 16/2/2
    assert [sum("rare" in labels for labels in s.labels) for s in splits.values()] == [16, 2, 2]
    again = read_splits(data_config(f"data.train={path}", "data.label_column=labels", "data.split_seed=7"))
    assert again["test"].texts == splits["test"].texts
    other = read_splits(data_config(f"data.train={path}", "data.label_column=labels", "data.split_seed=8"))
    assert other["test"].texts != splits["test"].texts


def test_a_label_too_rare_to_stratify_by_splits_at_random_seeded(tmp_path, caplog):
    labels = [("a",)] * 60 + [("b",)] * 39 + [("a", "once")]
    ex = Examples([f"t{i}" for i in range(100)], labels, "d.jsonl", multi_label=True)
    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    parts = stratified_split(ex, fractions, seed=3)
    assert "cannot stratify by rarest label" in caplog.text
    assert sorted(t for p in parts.values() for t in p.texts) == sorted(ex.texts)
    assert stratified_split(ex, fractions, seed=3)["test"].texts == parts["test"].texts


def test_same_text_with_another_label_set_conflicts_but_not_with_the_same_set_reordered():
    train = Examples(["a", "b", "c"], [("joy", "love"), ("fear",), ("joy",)], "train", multi_label=True)
    test = Examples(["a", "b"], [("love", "joy"), ("fear", "anger")], "test", multi_label=True)
    stats, across = split_stats({"train": train, "test": test})
    assert across == {"shared": {"train/test": 2}, "conflicting_labels": 1}


def test_report_counts_label_sets_and_draws_the_co_occurrence(tiny_model_dir, tmp_path):
    rows = [{"text": "i feel happy and loved", "labels": ["joy", "love"]}] * 3 + \
        [{"text": "so scared", "labels": ["fear"]}, {"text": "angry then happy", "labels": ["anger", "joy"]},
         {"text": "mad scared happy", "labels": ["anger", "fear", "joy"]}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = data_config(*(f"data.{split}={path}" for split in ("train", "validation", "test")),
                      "data.label_column=labels")
    report = describe(cfg, load_tokenizer(tiny_model_dir))
    train = report["splits"]["train"]
    assert report["multi_label"] and report["labels"] == ["anger", "fear", "joy", "love"]
    assert train["class_counts"] == [2, 2, 5, 3] and train["labels_per_text"] == [0, 1, 4, 1]
    assert np.asarray(train["co_occurrence"]).tolist() == [[2, 1, 2, 0], [1, 2, 1, 0], [2, 1, 5, 3], [0, 0, 3, 3]]
    text = format_report(report)
    assert "joy + love: 3" in text and "labels/text" in text
    written = save_plots(report, tmp_path / "report", "tiny")
    assert tmp_path / "report" / "label_co_occurrence.png" in written
    for png in written:
        assert png.read_bytes().startswith(b"\x89PNG")


def test_real_goemotions_reads_through_data_goemotions(shared_datasets):
    if not (shared_datasets / "goemotions").is_dir():
        pytest.skip(f"{shared_datasets / 'goemotions'} is absent")
    cfg = data_config(f"shared_datasets={shared_datasets}", data="goemotions")
    splits = read_splits(cfg)
    assert [len(s) for s in splits.values()] == [43410, 5426, 5427] and all(s.multi_label for s in splits.values())
    names = label_names(cfg, splits["train"])
    assert names == (shared_datasets / "goemotions" / "raw" / "labels.txt").read_text().split() and len(names) == 28
    train = label_ids(splits["train"], names)
    assert train.shape == (43410, 28)
    assert np.bincount(train.sum(1).astype(int)).tolist() == [0, 36308, 6541, 532, 28, 1]  # SOURCE.md's counts
    assert int(train[:, names.index("neutral")].sum()) == 14219
    first = json.loads((shared_datasets / "goemotions" / "train.jsonl").open().readline())
    assert splits["train"].texts[0] == first["text"] and splits["train"].labels[0] == tuple(first["labels"])
