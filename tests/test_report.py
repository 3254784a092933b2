"""What the data holds: de-duplication, texts shared between splits, conflicting labels, and the
dataset report (`python -m data.report`) over every file format, on generated and real data."""
import json
import logging
import re

import pytest
from hydra import compose, initialize_config_dir

from data.build import build_datasets, read_split, read_splits, split_stats
from data.readers import Examples
from data.report import describe
from data.tokenizer import load_tokenizer
from data.transform import BERTSentenceTransform
from common.config import PROJECT_ROOT
from tests.conftest import run_script, write_jsonl


def data_config(*overrides, data="files"):
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("report", overrides=[f"data={data}", *overrides]).data


def test_split_stats_count_duplicates_shared_texts_and_conflicting_labels():
    splits = {"train": Examples(["a", "b", "a", "c", "c", "d"], ["x", "y", "x", "x", "y", "x"], "train"),
              "validation": Examples(["d", "e", "f"], ["y", "x", "x"], "validation"),
              "test": Examples(["a", "e", "g"], ["x", "x", "y"], "test")}
    stats, across = split_stats(splits)
    # train repeats "a" (same label) and "c" (x, then y); "d" is x in train but y in validation
    assert stats["train"] == {"examples": 6, "texts_repaired": 0, "duplicates": 2, "shared_with_other_splits": 2,
                              "conflicting_labels": 2}
    assert stats["validation"] == {"examples": 3, "texts_repaired": 0, "duplicates": 0,
                                   "shared_with_other_splits": 2, "conflicting_labels": 1}
    assert stats["test"]["shared_with_other_splits"] == 2 and stats["test"]["conflicting_labels"] == 0
    assert across == {"shared": {"train/validation": 1, "train/test": 1, "validation/test": 1},
                      "conflicting_labels": 2}


def test_sentence_pairs_are_the_same_example_only_when_both_texts_match():
    train = Examples(["q", "q", "q"], ["x", "x", "y"], "train", texts_b=["p1", "p2", "p1"])
    stats, across = split_stats({"train": train, "test": Examples(["q"], ["x"], "test", texts_b=["p2"])})
    assert stats["train"]["duplicates"] == 1 and across == {"shared": {"train/test": 1}, "conflicting_labels": 1}


def test_dedup_happens_before_the_split_so_evaluate_carves_the_same_test_split(tmp_path):
    rows = [{"text": f"text {i}", "label": "ab"[i % 2]} for i in range(100)]
    rows += [{"text": "text 3", "label": "b"}, {"text": "text 8", "label": "b"}] * 5  # repeats, text 8 relabelled
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = data_config(f"data.train={path}", "data.dedup=true")
    splits = read_splits(cfg)
    assert splits["train"].stats["duplicates_dropped"] == 10
    assert sum(len(s) for s in splits.values()) == 100
    assert splits["train"].texts.count("text 8") + splits["test"].texts.count("text 8") + \
        splits["validation"].texts.count("text 8") == 1
    stats, across = split_stats(splits)
    assert across == {"shared": {"train/validation": 0, "train/test": 0, "validation/test": 0}, "conflicting_labels": 0}
    assert read_split(cfg, "test").texts == splits["test"].texts
    # without dedup the repeats land in several splits
    _, across = split_stats(read_splits(data_config(f"data.train={path}")))
    assert sum(across["shared"].values()) > 0 and across["conflicting_labels"] == 1


def test_training_data_warns_about_shared_texts_and_prints_the_counts(tiny_model_dir, tiny_data, tmp_path, caplog):
    test_rows = [json.loads(line) for line in tiny_data["test"].read_text().splitlines()]
    train_rows = [json.loads(line) for line in tiny_data["train"].read_text().splitlines()]
    relabelled = {**train_rows[1], "label": next(x for x in ("joy", "fear") if x != train_rows[1]["label"])}
    leaked = write_jsonl(tmp_path / "test.jsonl", test_rows + [train_rows[0], relabelled])
    cfg = data_config(f"data.train={tiny_data['train']}", f"data.validation={tiny_data['validation']}",
                      f"data.test={leaked}")
    transform = BERTSentenceTransform(load_tokenizer(tiny_model_dir), 64)
    with caplog.at_level(logging.WARNING, logger="data.build"):
        _, _, stats = build_datasets(cfg, transform)
    _, across = split_stats(read_splits(cfg))
    shared_with_test = across["shared"]["train/test"]
    assert shared_with_test >= 2  # the two rows copied from train (generated texts may repeat on their own)
    assert f"train/test {shared_with_test}" in caplog.text and "texts with conflicting labels" in caplog.text
    assert stats["test"]["shared_with_other_splits"] >= 2 and stats["test"]["conflicting_labels"] >= 1
    assert {"examples", "truncated", "duplicates", "conflicting_labels"} <= set(stats["train"])


def test_report_lengths_percentiles_truncation_and_unknown_tokens(tiny_model_dir, tmp_path):
    # "happy" is one token: a text of k words is k + 2 tokens with [CLS]/[SEP]
    rows = [{"text": " ".join(["happy"] * k), "label": "ab"[k % 2]} for k in range(1, 101)]
    rows[0] = {"text": "happy xyzzy", "label": "b"}  # an out-of-vocabulary word: one [UNK]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "small.jsonl", [{"text": "happy", "label": "a"}, {"text": "happy happy", "label": "b"}])
    cfg = data_config(f"data.train={tmp_path / 'train.jsonl'}", f"data.validation={tmp_path / 'small.jsonl'}",
                      f"data.test={tmp_path / 'small.jsonl'}", "data.max_len=64")
    tokenizer = load_tokenizer(tiny_model_dir)
    train = describe(cfg, tokenizer)["splits"]["train"]
    assert sorted(train["lengths"].tolist()) == sorted([4] + list(range(4, 103)))
    assert train["length_percentiles"] == {50: 52, 90: 92, 95: 97, 99: 101} and train["max_length"] == 102
    assert train["truncated"] == 102 - 64
    _, _, stats = build_datasets(cfg, BERTSentenceTransform(tokenizer, 64))
    assert stats["train"]["truncated"] == train["truncated"]  # the report counts what training cuts
    assert train["unknown_token_share"] == pytest.approx(1 / (2 + sum(range(2, 101))))
    assert train["class_counts"] == [50, 50]


FORMAT_ROWS = {"train": [("i feel happy, really", "joy")] * 4 + [("so angry; so mad", "anger")] * 3
               + [("scared", "fear")] * 2,
               "validation": [("great day", "joy"), ("furious", "anger"), ("afraid", "fear"), ("terrified", "fear")],
               "test": [("happy", "joy"), ("mad", "anger")]}


def write_rows(path, rows):
    """The same (text, label) rows in the file format its suffix names."""
    if path.suffix == ".xlsx":
        from openpyxl import Workbook

        workbook = Workbook()
        workbook.active.append(["text", "label"])
        for row in rows:
            workbook.active.append(list(row))
        workbook.save(path)
    elif path.suffix == ".jsonl":
        write_jsonl(path, [{"text": t, "label": label} for t, label in rows])
    elif path.suffix == ".txt":  # dair-ai raw: text;label, no header
        path.write_text("".join(f"{t};{label}\n" for t, label in rows))
    else:
        import csv

        with open(path, "w", newline="") as f:
            writer = csv.writer(f, delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writerows([("text", "label"), *rows])


def class_counts(stdout, label):
    """Counts of one row of the printed class table, per split."""
    line = next(line for line in stdout.splitlines() if line.startswith(label + " "))
    return [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) \(", line)]


@pytest.mark.parametrize("formats", [{"train": "xlsx", "validation": "txt", "test": "csv"},
                                     {"train": "jsonl", "validation": "tsv", "test": "txt"}])
def test_report_cli_reads_every_file_format(formats, tiny_model_dir, tmp_path):
    paths = {split: tmp_path / f"{split}.{fmt}" for split, fmt in formats.items()}
    for split, path in paths.items():
        write_rows(path, FORMAT_ROWS[split])
    result = run_script("-m", "data.report", "data=files", *(f"data.{s}={p}" for s, p in paths.items()),
                        f"model.path={tiny_model_dir}", f"out={tmp_path / 'report'}")
    assert result.returncode == 0, result.stderr
    for split, n in (("train", 9), ("validation", 4), ("test", 2)):
        assert f"{split}: examples {n}," in result.stdout
    assert class_counts(result.stdout, "anger") == [3, 1, 1]
    assert class_counts(result.stdout, "fear") == [2, 2, 0]
    assert class_counts(result.stdout, "joy") == [4, 1, 1]
    for png in ("class_frequency.png", "token_length.png"):
        assert (tmp_path / "report" / png).read_bytes().startswith(b"\x89PNG")


def test_report_on_real_emotion_data(shared_datasets, default_model_dir):
    cfg = data_config(f"shared_datasets={shared_datasets}", data="emotion")
    report = describe(cfg, load_tokenizer(default_model_dir))
    texts = {split: {json.loads(line)["text"] for line in (shared_datasets / "emotion" / f"{split}.jsonl").open()}
             for split in ("train", "validation", "test")}
    assert report["across"]["shared"] == {"train/validation": len(texts["train"] & texts["validation"]),
                                          "train/test": len(texts["train"] & texts["test"]),
                                          "validation/test": len(texts["validation"] & texts["test"])}
    train = report["splits"]["train"]
    assert sum(train["class_counts"]) == 16000 and train["stats"]["duplicates"] == 16000 - len(texts["train"])
    assert train["length_percentiles"][50] < train["length_percentiles"][99] <= train["max_length"]
