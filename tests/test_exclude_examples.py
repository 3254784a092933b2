"""data.exclude (data/exclude.py): a label audit's flagged examples leave the training split, and only it.
Single-label rows go only under their listed `given` label, multi-label rows by text; validation, test and
the folds stay those of the uncleaned run; a bad file is one line before anything trains; the drop is
counted in the log, the split's stats and metrics.json, and a resume after the file changed is refused."""
import csv
import json
import logging
import shutil

import pytest
from hydra import compose, initialize_config_dir

from common import checks
from common.config import PROJECT_ROOT
from common.errors import UserError
from data.build import read_split, read_splits, split_stats
from tests.conftest import run_script, write_jsonl
from tests.test_loop import composed
from train import train

AUDIT_COLUMNS = ["rank", "index", "given", "suggested", "self_confidence", "suggested_probability", "fold", "text"]
LONG = "long " * 40_000  # 200 KB: past the csv module's default field limit of 128 KiB


def data_config(*overrides):
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("report", overrides=["data=files", *overrides]).data


def write_issues(path, rows, columns=AUDIT_COLUMNS, bom=True):
    """A label_issues.csv as research/audit.py writes it, or with other `columns`; Excel's BOM by default."""
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def files(tmp_path):
    """Single-label train/validation/test, with texts that need exact CSV quoting and one past 128 KiB."""
    train = [{"text": "a, \"quoted\"\nline", "label": "x"}, {"text": "a, \"quoted\"\nline", "label": "y"},
             {"text": "b", "label": "x"}, {"text": "b", "label": "x"}, {"text": "b ", "label": "x"},
             {"text": LONG, "label": "y"}] + [{"text": f"t{i}", "label": "xy"[i % 2]} for i in range(10)]
    validation = [{"text": "v", "label": "x"}, {"text": "w", "label": "y"}]
    test = [{"text": "b", "label": "x"}, {"text": "u", "label": "y"}]
    return {split: write_jsonl(tmp_path / f"{split}.jsonl", rows)
            for split, rows in [("train", train), ("validation", validation), ("test", test)]}


def split_files(files):
    return [f"data.{split}={path}" for split, path in files.items()]


def listed(*pairs):
    return [{"rank": i, "index": i, "given": given, "suggested": "?", "fold": 0, "text": text}
            for i, (text, given) in enumerate(pairs, start=1)]


def test_single_label_drops_a_listed_text_only_under_its_given_label(files, tmp_path, caplog):
    issues = write_issues(tmp_path / "label_issues.csv", listed(
        ("a, \"quoted\"\nline", "x"), ("b", "x"), (LONG, "y"), ("v", "x"), ("nowhere", "y"), ("b", "x")))
    with caplog.at_level(logging.INFO, logger="data.exclude"):
        splits = read_splits(data_config(*split_files(files), f"data.exclude={issues}"))
    plain = read_splits(data_config(*split_files(files)))
    train = list(zip(splits["train"].texts, splits["train"].labels))
    # ("a...", y) keeps its other label; both ("b", x) rows go; "b " is another text (no normalisation)
    assert train == [("a, \"quoted\"\nline", "y"), ("b ", "x")] + [(f"t{i}", "xy"[i % 2]) for i in range(10)]
    for split in ("validation", "test"):  # "v" and "b" are listed, yet stay where they validate and test
        assert splits[split].texts == plain[split].texts and splits[split].labels == plain[split].labels
    assert splits["train"].stats["excluded"] == 4
    assert ("data.exclude: dropped 4 training examples of the 5 listed (2 listed texts not in the training split: "
            "validation/test or absent)") in caplog.text
    stats, _ = split_stats(splits)
    assert stats["train"]["excluded"] == 4 and "excluded" not in stats["validation"]
    assert "excluded" not in split_stats(plain)[0]["train"]


def test_read_split_gives_training_without_the_listed_rows_and_never_needs_the_file_for_the_others(files,
                                                                                                    tmp_path):
    issues = write_issues(tmp_path / "label_issues.csv", listed(("b", "x")))
    cfg = data_config(*split_files(files), f"data.exclude={issues}")
    assert read_split(cfg, "train").texts == read_splits(cfg)["train"].texts
    issues.unlink()  # evaluate.py reads a checkpoint's validation/test after the file is gone
    assert read_split(cfg, "validation").texts == ["v", "w"] and read_split(cfg, "test").texts == ["b", "u"]


def test_multi_label_drops_every_training_row_of_a_listed_text(tmp_path, caplog):
    rows = [{"text": "p", "label": ["x", "y"]}, {"text": "q", "label": ["y"]}, {"text": "p", "label": ["x"]},
            {"text": "r", "label": ["x"]}, {"text": "s", "label": ["y"]}]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    validation = write_jsonl(tmp_path / "validation.jsonl", [{"text": "q2", "label": ["x"]}])
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "r2", "label": ["y"]}])
    # one row per flagged (example, label), as the audit writes multi-label issues; no BOM this time
    issues = write_issues(tmp_path / "label_issues.csv", [
        {"label": "x", "given": "present", "text": "p"}, {"label": "y", "given": "absent", "text": "p"},
        {"label": "x", "given": "absent", "text": "q"}, {"label": "x", "given": "present", "text": "q2"}],
        columns=["rank", "index", "label", "given", "suggested", "self_confidence", "fold", "text"], bom=False)
    with caplog.at_level(logging.INFO, logger="data.exclude"):
        splits = read_splits(data_config(f"data.train={train}", f"data.validation={validation}",
                                         f"data.test={test}", f"data.exclude={issues}"))
    assert splits["train"].texts == ["r", "s"] and splits["validation"].texts == ["q2"]
    assert "dropped 3 training examples of the 3 listed (1 listed texts not in the training split" in caplog.text


def test_multi_label_needs_only_a_text_column(tmp_path):
    files = {split: write_jsonl(tmp_path / f"{split}.jsonl", [{"text": t, "label": ["x", "y"][: i % 2 + 1]}
                                                              for i, t in enumerate(texts)])
             for split, texts in [("train", "abcdefghij"), ("validation", "kl"), ("test", "mn")]}
    issues = write_issues(tmp_path / "texts.csv", [{"text": "c"}], columns=["text"])
    splits = read_splits(data_config(*split_files(files), f"data.exclude={issues}"))
    assert "c" not in splits["train"].texts and splits["train"].stats["excluded"] == 1


def test_with_folds_only_the_folds_training_part_loses_rows(files, tmp_path):
    plain = data_config(*split_files(files), "data.folds=2", "data.fold=0")
    before = read_splits(plain)
    held_out = before["validation"].texts[0], before["validation"].labels[0]
    trained = before["train"].texts[0], before["train"].labels[0]
    issues = write_issues(tmp_path / "label_issues.csv", listed(held_out, trained))
    after = read_splits(data_config(*split_files(files), "data.folds=2", "data.fold=0", f"data.exclude={issues}"))
    assert after["validation"].texts == before["validation"].texts  # the fold is dealt before the drop
    assert trained not in zip(after["train"].texts, after["train"].labels)
    assert len(after["train"]) < len(before["train"])
    assert after["test"].texts == before["test"].texts


@pytest.mark.parametrize("columns, rows, message", [
    (["rank", "given"], [{"rank": 1, "given": "x"}],
     r"label_issues.csv:1: no column 'text' in header \(rank, given\); data.exclude matches training texts by it"),
    (["rank", "text"], [{"rank": 1, "text": "b"}],
     r"label_issues.csv:1: no column 'given': single-label data drops a listed text only under its given label"),
    (AUDIT_COLUMNS, listed(("b", "x"), ("t1", "present")),
     r"label_issues.csv:3: column 'given' is 'present', not one of the data's labels \(x, y\)"),
    (AUDIT_COLUMNS, listed(("b", "x"), ("", "x")), r"label_issues.csv:3: empty 'text', which matches no example"),
])
def test_a_bad_file_is_one_line_naming_file_line_and_column(files, tmp_path, columns, rows, message):
    issues = write_issues(tmp_path / "label_issues.csv", rows, columns=columns)
    with pytest.raises(UserError, match=message) as refused:
        read_splits(data_config(*split_files(files), f"data.exclude={issues}"))
    assert "\n" not in str(refused.value)


def test_a_missing_file_or_sentence_pairs_are_refused_with_the_config(files, tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(UserError, match=f"^data.exclude={missing}: file not found$"):
        checks.check_data(data_config(*split_files(files), f"data.exclude={missing}"))
    issues = write_issues(tmp_path / "label_issues.csv", listed(("b", "x")))
    with pytest.raises(UserError, match=r"not for sentence-pair data \(data.text_b_column=text_b\): the audit's "
                                        "text column joins the pair"):
        checks.check_data(data_config(*split_files(files), "data.text_b_column=text_b", f"data.exclude={issues}"))


def test_train_py_refuses_a_bad_file_in_one_line_with_exit_2(tiny_model_dir, files, tmp_path):
    issues = write_issues(tmp_path / "label_issues.csv", listed(("b", "joy")))
    result = run_script("train.py", f"model.path={tiny_model_dir}", *split_files(files), "data=files",
                        f"data.exclude={issues}", f"hydra.run.dir={tmp_path / 'run'}", "trainer.device=cpu")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == (f"error: {issues}:2: column 'given' is 'joy', not one of the data's labels (x, y)\n")


def test_a_run_reports_the_drop_and_its_resume_refuses_an_edited_file(tiny_model_dir, tiny_data, tmp_path, caplog,
                                                                       capsys):
    rows = [json.loads(line) for line in tiny_data["train"].read_text().splitlines()]
    other_label = next(name for name in ("joy", "anger", "fear") if name != rows[1]["label"])
    issues = write_issues(tmp_path / "label_issues.csv",
                          listed((rows[0]["text"], rows[0]["label"]), (rows[1]["text"], other_label)))
    expected = sum(row == rows[0] for row in rows)  # generated texts may repeat
    run_dir = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="data.exclude"):
        train(composed(tiny_model_dir, tiny_data, f"data.exclude={issues}", "trainer.max_steps=2"), run_dir)
    assert f"dropped {expected} training examples of the 2 listed (1 listed texts" in caplog.text
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data_exclude"] == {"file": str(issues), "dropped": expected}
    # the file now drops another row as well: the training split is not the one the run trained on
    shutil.copy(issues, tmp_path / "trained_with.csv")
    write_issues(issues, listed((rows[0]["text"], rows[0]["label"]), (rows[2]["text"], rows[2]["label"])))
    with pytest.raises(UserError, match=r"the train split differs from the one the run trained on"):
        train(composed(tiny_model_dir, tiny_data, f"data.exclude={issues}", "trainer.max_steps=2",
                       "trainer.resume=auto"), run_dir)
    # the same rows dropped by a file elsewhere resume: data.exclude is a path, its effect is the split's hash
    capsys.readouterr()
    train(composed(tiny_model_dir, tiny_data, f"data.exclude={tmp_path / 'trained_with.csv'}", "trainer.max_steps=2",
                   "trainer.resume=auto"), run_dir)
    assert f"resumed from {run_dir / 'checkpoints' / 'last'} at step 2" in capsys.readouterr().out
