"""README "Bad input": one test per row, through the real command line. A refused input ends with
exit code 2 and one line on stderr, and nothing is half-written: files already there stay as they
were, no checkpoint appears. data.report is the cheap command where no training is needed; it
reads and checks data exactly as train.py does."""
import json

import pytest

from tests.conftest import make_examples, run_script, write_jsonl

OLD_PLOT = b"a plot from an earlier report"


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def report(tmp_path, data_file, *overrides):
    """data.report on one training file, into an `out` directory that already holds a plot."""
    out = tmp_path / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "class_frequency.png").write_bytes(OLD_PLOT)
    return run_script("-m", "data.report", "data=files", f"data.train={data_file}", f"out={out}", *overrides)


def assert_report_untouched(tmp_path):
    out = tmp_path / "report"
    assert (out / "class_frequency.png").read_bytes() == OLD_PLOT and not (out / "token_length.png").exists()


def labelled_csv(path, body: bytes) -> str:
    """A CSV with enough rows of two classes to be split 80/10/10, then `body` (bytes) as rows 22+."""
    rows = b"".join(b"fine text %d,%s\n" % (i, b"ab"[i % 2:i % 2 + 1]) for i in range(20))
    path.write_bytes(b"text,label\n" + rows + body)
    return path


def test_missing_file(tmp_path):
    result = report(tmp_path, tmp_path / "absent.jsonl")
    assert one_line_error(result) == f"error: {tmp_path / 'absent.jsonl'}: file not found"
    assert_report_untouched(tmp_path)


@pytest.mark.parametrize("name, expected", [
    ("e.csv", "file is empty"),
    ("e.jsonl", "no examples (the file is empty or every text is empty)"),
])
def test_empty_file(tmp_path, name, expected):
    (tmp_path / name).write_text("")
    assert one_line_error(report(tmp_path, tmp_path / name)) == f"error: {tmp_path / name}: {expected}"
    assert_report_untouched(tmp_path)


def test_missing_column_lists_the_header(tmp_path):
    (tmp_path / "d.csv").write_text("sentence,emotion\nhello,joy\n")
    assert one_line_error(report(tmp_path, tmp_path / "d.csv")) == (
        f"error: {tmp_path / 'd.csv'}:1: no column 'text' in header (sentence, emotion); "
        "set data.text_column / data.label_column")
    assert_report_untouched(tmp_path)


def test_invalid_json_line(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", \n')
    assert one_line_error(report(tmp_path, tmp_path / "d.jsonl")) == (
        f"error: {tmp_path / 'd.jsonl'}:2: not valid JSON (Expecting property name enclosed in double quotes "
        "at column 15)")
    assert_report_untouched(tmp_path)


def test_empty_text_is_skipped_and_counted_or_refused(tmp_path):
    path = labelled_csv(tmp_path / "d.csv", b"  ,a\n")
    skipped = report(tmp_path / "skip", path)
    assert skipped.returncode == 0, skipped.stderr
    assert "train: examples 16, texts_repaired 0, empty_texts_skipped 1," in skipped.stdout
    assert one_line_error(report(tmp_path, path, "data.empty_text=error")) == (
        f"error: {path}:22: empty text (set data.empty_text=skip to skip such rows)")
    assert_report_untouched(tmp_path)


def test_undecodable_bytes_are_refused_with_the_line_or_replaced_and_counted(tmp_path):
    path = labelled_csv(tmp_path / "d.csv", b"bad \x8a byte,a\n")
    assert one_line_error(report(tmp_path, path)) == (
        f"error: {path}:22: invalid UTF-8 byte 0x8a (set data.decode_errors=replace to repair such bytes)")
    assert_report_untouched(tmp_path)
    replaced = report(tmp_path / "replace", path, "data.decode_errors=replace")
    assert replaced.returncode == 0, replaced.stderr
    repaired = [int(line.split("texts_repaired ")[1].split(",")[0]) for line in replaced.stdout.splitlines()
                if "texts_repaired" in line]
    assert sum(repaired) == 1  # one text, in whichever split it landed


def test_too_few_examples_to_split(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\na,x\nb,x\nc,y\nd,y\ne,y\n")
    assert one_line_error(report(tmp_path, tmp_path / "d.csv")) == (
        f"error: {tmp_path / 'd.csv'}: cannot split 5 examples stratified by label into train, validation, test "
        "(The test_size = 1 should be greater or equal to the number of classes = 2); give more examples or "
        "data.validation/data.test files")
    assert_report_untouched(tmp_path)


def assert_no_run_output(run_dir):
    """At most Hydra's record of the config: no checkpoint, no metrics, no TensorBoard events."""
    assert not run_dir.exists() or {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log"}


def train_args(model_dir, files, run_dir):
    return ["train.py", f"model.path={model_dir}", "data=files", *(f"data.{s}={p}" for s, p in files.items()),
            "trainer.max_steps=2", "trainer.batch_size=16", "trainer.precision=fp32", f"hydra.run.dir={run_dir}"]


@pytest.fixture(scope="module")
def trained_with_a_huge_text(tiny_model_dir, tiny_data, tmp_path_factory):
    """Two steps of training on data holding a 300,000-word text."""
    directory = tmp_path_factory.mktemp("huge")
    rows = [json.loads(line) for line in tiny_data["train"].read_text().splitlines()]
    train = write_jsonl(directory / "train.jsonl", rows + [{"text": "so happy " * 150_000, "label": "joy"}])
    result = run_script(*train_args(tiny_model_dir, {**tiny_data, "train": train}, directory / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    return directory / "run", result


def test_extremely_long_text_is_truncated_and_counted(trained_with_a_huge_text):
    run_dir, result = trained_with_a_huge_text
    assert "train: examples 241, truncated 1," in result.stdout
    assert (run_dir / "metrics.json").is_file()


def test_label_the_checkpoint_does_not_know(trained_with_a_huge_text, tmp_path):
    run_dir, _ = trained_with_a_huge_text
    test_file = write_jsonl(tmp_path / "t.jsonl", [{"text": "wow", "label": "surprise"}, *make_examples(3, 0)])
    out = tmp_path / "eval.json"
    out.write_text("an earlier evaluation")
    result = run_script("evaluate.py", f"checkpoint={run_dir / 'checkpoints' / 'best'}", "data=files",
                        f"data.test={test_file}", f"out={out}")
    assert one_line_error(result) == (
        f"error: {test_file}: label 'surprise' is not one of the model's labels (anger, fear, joy)")
    assert out.read_text() == "an earlier evaluation"


def test_only_one_class_in_training_data(tiny_model_dir, tiny_data, tmp_path):
    one_class = write_jsonl(tmp_path / "train.jsonl", [r for r in make_examples(30, 0) if r["label"] == "joy"])
    run_dir = tmp_path / "run"
    result = run_script(*train_args(tiny_model_dir, {**tiny_data, "train": one_class}, run_dir))
    assert one_line_error(result) == f"error: {one_class}: only one class ('joy') in the training data"
    assert_no_run_output(run_dir)


@pytest.mark.parametrize("script, args, expected", [
    ("train.py", ["trainer.bacth_size=8"], "Could not override 'trainer.bacth_size'"),
    ("train.py", ["data=nope"], "Could not find 'data/nope'"),
    ("train.py", ["data=files"], "data.train is not set"),
    ("predict.py", [], "checkpoint has no value"),
    ("evaluate.py", ["checkpoint=x", "split=[1"], "no viable alternative"),
    ("-m", ["data.report", "data.max_lenght=32"], "Could not override 'data.max_lenght'"),
])
def test_config_mistakes(script, args, expected, tmp_path):
    result = run_script(script, *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert expected in one_line_error(result)
    assert_no_run_output(tmp_path / "run")
