"""Config values are checked before any data is read: a wrong type, an unknown choice, a value out of
its range or two values that do not fit together end in one line on stderr and exit code 2, with no
traceback and nothing written (not even Hydra's run directory).

The table rows of issue 13 run through the real command line; the walk over every key of the schema
(common/schema.py) runs in process, through the same check_overrides + checks an entry script runs."""
import dataclasses
import enum
import typing

import pytest

from common import checks, schema
from common.cli import check_overrides
from tests.conftest import run_script, write_jsonl
from tests.test_bad_input import one_line_error

ABSENT_DATA = "/nonexistent/train.jsonl"  # never read: every refusal here comes before the data


TRAIN_ARGS = ["data=files", f"data.train={ABSENT_DATA}"]


@pytest.fixture(scope="module")
def long_text_data(tmp_path_factory):
    rows = [{"text": "word " * 700 if i == 0 else f"short text {i}", "label": "ab"[i % 2]} for i in range(40)]
    return write_jsonl(tmp_path_factory.mktemp("values") / "train.jsonl", rows)


@pytest.mark.parametrize("override, message", [
    ("model.pooling=max", "model.pooling='max' is not one of pooler, cls, mean"),
    ("model.dropout=1.0", "model.dropout=1.0 must be in [0, 1)"),
    ("data.max_len=2", "data.max_len=2 must be at least 3: [CLS], [SEP] and one token of text"),
    ("optim.lr=-1", "optim.lr=-1.0 must be above 0"),
    ("seed=abc", "seed='abc': expected an integer"),
    ("data.max_len=1000", "data.max_len=1000 exceeds the 512 positions of the encoder"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 must be at least 1"),
    ("model.trim_vocab=true", "model.trim_vocab=true needs a Unigram tokenizer.json"),  # MiniLM's is WordPiece
])
def test_issue_table_rows_end_in_one_line_before_the_data(override, message, long_text_data, default_model_dir,
                                                          tmp_path):
    result = run_script("train.py", "data=files", f"data.train={long_text_data}", f"hydra.run.dir={tmp_path / 'run'}",
                        override)
    assert one_line_error(result).startswith(f"error: {message}")
    assert list(tmp_path.iterdir()) == []  # not even Hydra's .hydra/ record


def test_a_sweep_with_a_refused_value_stops_before_its_first_job(tiny_model_dir, tmp_path):
    result = run_script("train.py", "-m", f"model.path={tiny_model_dir}", *TRAIN_ARGS, "model.pooling=mean,nonsense",
                        "optim.lr=1e-4,2e-4", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert one_line_error(result) == "error: model.pooling='nonsense' is not one of pooler, cls, mean"
    assert list(tmp_path.iterdir()) == []


# Per entry config: what composes it (required values) and the checks its script runs first.
ENTRIES = {
    "config": (lambda model_dir: [f"model.path={model_dir}", *TRAIN_ARGS], checks.check_train),
    "evaluate": (lambda model_dir: ["checkpoint=ckpt"], checks.check_evaluate),
    "predict": (lambda model_dir: ["checkpoint=ckpt"], checks.check_predict),
    "report": (lambda model_dir: [f"model.path={model_dir}", *TRAIN_ARGS], checks.check_report),
    "export": (lambda model_dir: ["checkpoint=ckpt", "out=exported"], checks.check_export),
}
# A value out of range for every number of the schema (a new number without a check fails the walk).
OUT_OF_RANGE = {
    "seed": -1, "model.dropout": 1.0, "data.split_seed": -1, "data.max_len": 129,  # the tiny encoder: 128
    "data.folds": 1, "data.fold": -1,
    "data.split.train": 0, "data.split.validation": 1.5, "data.split.test": -0.1,
    "optim.lr": 0, "optim.weight_decay": -0.1, "optim.eps": 0, "optim.betas": "[0.9,1.0]",
    "scheduler.warmup_ratio": 1.5, "scheduler.min_lr_ratio": -1,
    "trainer.max_epochs": 0, "trainer.max_steps": 0, "trainer.batch_size": 0, "trainer.grad_accum_steps": 0,
    "trainer.eval_batch_size": 0, "trainer.max_grad_norm": 0, "trainer.threads": 0, "trainer.num_workers": -1,
    "trainer.log_every": 0, "trainer.top_losses": 0, "trainer.projector_max_examples": 0,
    "trainer.save_every_steps": -1, "trainer.device": "gpu",
    "top_losses": 0, "projector_max_examples": 0, "batch_size": 0, "threads": 0, "device": "gpu", "opset": 6,
    "optim.layer_decay": 1.5, "loss.label_smoothing": 1.0, "trainer.val_every_steps": 0, "trainer.patience": 0,
    "trainer.min_delta": -0.1, "trainer.threshold": 1.0, "threshold": 0,
    "model.trim_vocab": "true",  # the tiny encoder's tokenizer is a vocab.txt: nothing to trim
}
WRONG_TYPE = {int: "abc", float: "abc", bool: "maybe", str: "[a,b]", list: "abc"}


def schema_keys(node, prefix="") -> list[tuple[str, type]]:
    """(dotted key, type) of every leaf of a schema dataclass; groups typed Any are left to their own schema."""
    keys = []
    for f in dataclasses.fields(node):
        kind = typing.get_args(f.type)[0] if typing.get_origin(f.type) is typing.Union else f.type
        if dataclasses.is_dataclass(kind):
            keys += schema_keys(kind, f"{prefix}{f.name}.")
        elif kind is not typing.Any:
            keys.append((f"{prefix}{f.name}", typing.get_origin(kind) or kind))
    return keys


def walk_cases():
    for entry, node in schema.ENTRIES.items():
        # data.report reads the model group for model.path alone: its other values are only typed there.
        groups = {"config": list(schema.GROUPS), "report": ["model", "data"]}.get(entry, [])
        keys = schema_keys(node) + [k for group in groups for k in schema_keys(schema.GROUPS[group], f"{group}.")]
        for key, kind in keys:
            wrong = "nope" if issubclass(kind, enum.Enum) else WRONG_TYPE[kind]
            yield pytest.param(entry, key, wrong, id=f"{entry}:{key}=wrong type")
            if key in OUT_OF_RANGE and not (entry == "report" and key.startswith("model.")):
                yield pytest.param(entry, key, OUT_OF_RANGE[key], id=f"{entry}:{key}=out of range")
            elif key not in OUT_OF_RANGE:
                assert kind in (str, bool, list) or issubclass(kind, enum.Enum), f"{entry}:{key} has no range case"


@pytest.mark.parametrize("entry, key, value", list(walk_cases()))
def test_every_schema_key_refuses_a_wrong_value_in_one_line(entry, key, value, tiny_model_dir, tmp_path, capsys,
                                                            monkeypatch):
    required, entry_checks = ENTRIES[entry]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as refused:
        check_overrides(entry, [*required(tiny_model_dir), f"{key}={value}"], checks=entry_checks)
    assert refused.value.code == 2
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    assert key.split(".")[-1] in lines[0] or key.rsplit(".", 1)[0] in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []


def test_the_walk_covers_the_whole_schema():
    cases = list(walk_cases())
    assert len(cases) > 100
    assert {"model.trim_vocab", "data.text_prefix", "optim.implementation"} <= {c.values[1] for c in cases}


def test_legitimate_values_pass_the_checks(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_overrides("config", [f"model.path={tiny_model_dir}", *TRAIN_ARGS, "data.max_len=128", "model.dropout=0",
                               "optim.implementation=for-loop", "trainer.device=cuda:1", "data.validation=v.jsonl",
                               "data.split.validation=0", "data.split.train=0.9",
                               "trainer.max_steps=null", "data.text_prefix=query: "],
                    checks=checks.check_train)


@pytest.mark.parametrize("files, refused", [
    ({"tokenizer.json": '{"model": {"type": "Unigram", "vocab": []}}'}, None),
    ({"tokenizer.json": '{"model": {"type": "BPE"}}'}, "has a BPE tokenizer.json: set model.trim_vocab=false"),
    ({"tokenizer.json": '{"model": {"type": "WordPiece"}}', "vocab.txt": "[PAD]\n"}, "has a WordPiece tokenizer.json"),
    ({"spiece.model": ""}, "has a SentencePiece model and no tokenizer.json"),
    ({"vocab.txt": "[PAD]\n"}, "has a WordPiece vocab.txt and no tokenizer.json"),
    ({}, "has no tokenizer files"),
    ({"tokenizer.json": '{"model": '}, "tokenizer.json: not valid JSON"),
    ({"tokenizer.json": '{"vocab": []}'}, "tokenizer.json: not a tokenizer.json (no model.type)"),
])
def test_trim_vocab_needs_a_unigram_tokenizer_json_before_the_data(files, refused, tiny_model_dir, tmp_path, capsys,
                                                                  monkeypatch):
    """Only model.type is read (the check sees no pieces), so a stub tokenizer.json stands in for the real one."""
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    for name, text in files.items():
        (encoder / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    args = [f"model.path={encoder}", *TRAIN_ARGS, "model.trim_vocab=true"]
    if refused is None:
        check_overrides("config", args, checks=checks.check_train)  # passes: the data is never read here
        return
    with pytest.raises(SystemExit) as stopped:
        check_overrides("config", args, checks=checks.check_train)
    lines = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(lines) == 1 and refused in lines[0], lines
    assert lines[0].startswith("error: model.trim_vocab=true needs a Unigram") or "tokenizer.json:" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder"]  # no run directory
