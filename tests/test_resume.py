"""Crash-safe checkpoints and exact resume: SIGKILL / SIGTERM mid-epoch, killed checkpoint writes,
non-finite gradients, and checkpoints that try to run code."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from common.config import PROJECT_ROOT
from tests.conftest import make_examples, run_script, write_jsonl
from tests.test_bert import _CreatesFile


@pytest.fixture(scope="module")
def longer_data(tmp_path_factory):
    """Enough batches (2 x 75 steps) that a run can be interrupted mid-epoch."""
    directory = tmp_path_factory.mktemp("longer_data")
    return {split: write_jsonl(directory / f"{split}.jsonl", make_examples(n, seed))
            for split, n, seed in [("train", 600, 11), ("validation", 60, 12), ("test", 60, 13)]}


def train_args(model_dir, data, run_dir, *extra):
    return ["train.py", f"model.path={model_dir}", "data=files", f"data.train={data['train']}",
            f"data.validation={data['validation']}", f"data.test={data['test']}", "trainer.max_epochs=2",
            "trainer.batch_size=8", "optim.lr=1e-3", "trainer.log_every=7", "trainer.save_every_steps=5",
            f"hydra.run.dir={run_dir}", *extra]


def final_weights(run_dir):
    return load_file(str(run_dir / "checkpoints" / "last" / "model.safetensors"))


def assert_bitwise_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def saved_step(run_dir):
    try:
        state = json.loads((run_dir / "checkpoints" / "last" / "training_state.json").read_text())
        return state["progress"]["step"]
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or between its renames
        return -1


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, longer_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    result = run_script(*train_args(tiny_model_dir, longer_data, run_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def interrupt(args, run_dir, sig, after_step):
    child = subprocess.Popen([sys.executable, *args], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while saved_step(run_dir) < after_step and child.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert child.poll() is None, "training finished before it could be interrupted"
    child.send_signal(sig)
    _, stderr = child.communicate(timeout=120)
    return child.returncode, stderr


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_interrupted_run_resumes_to_bitwise_identical_weights(sig, uninterrupted, tiny_model_dir, longer_data,
                                                              tmp_path):
    args = train_args(tiny_model_dir, longer_data, tmp_path)
    returncode, stderr = interrupt(args, tmp_path, sig, after_step=20)
    if sig == signal.SIGTERM:
        assert returncode == 128 + signal.SIGTERM and "Traceback" not in stderr
        assert "stopped by SIGTERM" in stderr and "trainer.resume=auto" in stderr
    else:
        assert returncode == -signal.SIGKILL
    interrupted_at = saved_step(tmp_path)
    assert 20 <= interrupted_at < 150

    resumed = run_script(*args, "trainer.resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from {tmp_path / 'checkpoints' / 'last'} at step {interrupted_at}" in resumed.stdout
    assert_bitwise_equal(final_weights(tmp_path), final_weights(uninterrupted))
    ours, reference = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path, uninterrupted))
    assert ours["test"] == reference["test"] and ours["steps"] == reference["steps"] == 150


def test_resumed_tensorboard_curve_has_no_duplicate_steps(uninterrupted, tiny_model_dir, longer_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = train_args(tiny_model_dir, longer_data, tmp_path)
    interrupt(args, tmp_path, signal.SIGKILL, after_step=30)
    assert run_script(*args, "trainer.resume=auto").returncode == 0
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == list(range(7, 151, 7))


def test_fresh_run_refuses_to_overwrite_a_resumable_run(uninterrupted, tiny_model_dir, longer_data):
    result = run_script(*train_args(tiny_model_dir, longer_data, uninterrupted))
    assert result.returncode == 2 and "pass trainer.resume=auto" in result.stderr


WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from data.tokenizer import load_tokenizer
from model.encoders.bert import BertEncoder
from model.checkpoint import ClassifierInfo, save_checkpoint
from model.classifier import BERTClassifier
model = BERTClassifier(BertEncoder.from_pretrained({model!r}), 3)
tokenizer = load_tokenizer({model!r})
print("ready", flush=True)
for i in range(1000000):
    for p in model.parameters():
        p.data.fill_(i % 7)
    save_checkpoint({target!r}, model, ClassifierInfo(["a", "b", "c"], "pooler", 32), tokenizer)
"""


def test_killed_checkpoint_writes_leave_a_loadable_checkpoint(tiny_model_dir, tmp_path):
    from model.checkpoint import load_checkpoint

    target = tmp_path / "best"
    script = WRITER.format(root=str(PROJECT_ROOT), model=str(tiny_model_dir), target=str(target))
    delays = [0.05 * k for k in range(1, 13)]
    for delay in delays:
        writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(delay)  # lands anywhere in a save: weights, tokenizer files, fsync, the renames
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        if not target.exists() and not (tmp_path / ".best.old").exists():
            continue  # killed before the very first save finished: nothing was promised yet
        loaded = load_checkpoint(target)
        values = {float(p.detach().flatten()[0]) for p in loaded.model.parameters()}
        assert len(values) == 1, "a checkpoint mixes weights of two saves"


def test_nonfinite_gradient_stops_with_one_line_and_keeps_the_checkpoint(tiny_model_dir, longer_data, tmp_path):
    result = run_script(*train_args(tiny_model_dir, longer_data, tmp_path, "optim.lr=1e30", "trainer.max_grad_norm=1e30",
                                    "trainer.precision=fp32"))
    last_line = result.stderr.strip().splitlines()[-1]  # after the progress bar
    assert result.returncode == 2 and last_line.startswith("error: non-finite gradient at step"), result.stderr
    assert "Traceback" not in result.stderr


def test_nonfinite_gradient_steps_can_be_skipped(tiny_model_dir, longer_data, tmp_path):
    result = run_script(*train_args(tiny_model_dir, longer_data, tmp_path, "optim.lr=1e30", "trainer.max_grad_norm=1e30",
                                    "trainer.precision=fp32", "trainer.on_nonfinite=skip", "trainer.max_steps=30"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["skipped_steps"] > 0


def write_pickle_bomb(path, marker):
    with open(path, "wb") as f:
        pickle.dump({"weights": _CreatesFile(marker)}, f)


def test_no_entry_point_runs_code_from_a_checkpoint(uninterrupted, tiny_model_dir, longer_data, tmp_path):
    marker = tmp_path / "pwned"
    # encoder weights given as a pickle (train.py model.path=...)
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        (encoder / name).write_bytes((tiny_model_dir / name).read_bytes())
    write_pickle_bomb(encoder / "pytorch_model.bin", marker)
    result = run_script(*train_args(encoder, longer_data, tmp_path / "run"))
    assert result.returncode == 2 and "refused to load" in result.stderr
    # a classifier checkpoint whose weights file is a pickle (evaluate.py, predict.py)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    for f in (uninterrupted / "checkpoints" / "best").iterdir():
        checkpoint.joinpath(f.name).write_bytes(f.read_bytes())
    write_pickle_bomb(checkpoint / "model.safetensors", marker)
    for script, *extra in (("predict.py", "text=hi"), ("evaluate.py",)):
        result = run_script(script, f"checkpoint={checkpoint}", *extra)
        assert result.returncode == 2 and "cannot load weights" in result.stderr, script
    # a resumable checkpoint whose training state is a pickle (train.py trainer.resume=...)
    resumable = tmp_path / "resumable"
    resumable.mkdir()
    for f in (uninterrupted / "checkpoints" / "last").iterdir():
        resumable.joinpath(f.name).write_bytes(f.read_bytes())
    write_pickle_bomb(resumable / "training_state.safetensors", marker)
    result = run_script(*train_args(tiny_model_dir, longer_data, tmp_path / "run2", f"trainer.resume={resumable}"))
    assert result.returncode == 2 and "unreadable training state" in result.stderr
    assert not marker.exists()


def test_failed_checkpoint_write_keeps_the_previous_one(tiny_model_dir, tmp_path, monkeypatch):
    import errno

    import model.checkpoint as checkpoint
    from data.tokenizer import load_tokenizer
    from common.errors import UserError
    from model.encoders.bert import BertEncoder
    from model.classifier import BERTClassifier

    model = BERTClassifier(BertEncoder.from_pretrained(tiny_model_dir), 3)
    info, tokenizer = checkpoint.ClassifierInfo(["a", "b", "c"], "pooler", 32), load_tokenizer(tiny_model_dir)
    checkpoint.save_checkpoint(tmp_path / "best", model, info, tokenizer)
    before = load_file(str(tmp_path / "best" / "model.safetensors"))

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", disk_full)
    with torch.no_grad():
        model.head.weight.add_(1)
    with pytest.raises(UserError, match="No space left on device.*still holds the previous one"):
        checkpoint.save_checkpoint(tmp_path / "best", model, info, tokenizer)
    assert_bitwise_equal(load_file(str(tmp_path / "best" / "model.safetensors")), before)
    assert [p.name for p in tmp_path.iterdir()] == ["best"]  # no temporary directory left behind
