"""Everyday failures that used to end in tracebacks: Ctrl-C while train.py starts, a checkpoint whose
train_config.yaml is broken, and weights whose shapes do not fit: each is one line naming what is wrong."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import evaluate
from common.config import PROJECT_ROOT
from common.errors import UserError
from data.tokenizer import load_tokenizer
from model.encoders.bert import BertEncoder
from model.checkpoint import ClassifierInfo, load_weights, save_checkpoint
from model.classifier import BERTClassifier


def libraries_loaded(pid: int) -> bool:
    """torch's shared library is mapped: the interpreter is deep in train.py's imports."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see the imports under way")
def test_ctrl_c_while_train_starts_is_one_line_and_exit_130(tmp_path):
    child = subprocess.Popen([sys.executable, "train.py", f"hydra.run.dir={tmp_path}"], cwd=PROJECT_ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not libraries_loaded(child.pid) and child.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert child.poll() is None, "train.py ended before it could be interrupted"
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130 and stderr.strip() == "interrupted", stderr[-2000:]


@pytest.fixture
def checkpoint(tiny_model_dir, tmp_path):
    model = BERTClassifier(BertEncoder.from_pretrained(tiny_model_dir), 3)
    save_checkpoint(tmp_path / "best", model, ClassifierInfo(["a", "b", "c"], "pooler", 32),
                    load_tokenizer(tiny_model_dir), "model:\n  path: [unclosed\n")
    return tmp_path / "best"


def test_broken_train_config_in_a_checkpoint_is_one_line_naming_the_file(checkpoint, capsys):
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"checkpoint={checkpoint}", "threads=1"])
    with pytest.raises(SystemExit) as exited:
        evaluate.main(cfg)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {checkpoint / 'train_config.yaml'}: not a readable config (")
    assert err.rstrip().endswith("pass data=... to say what to evaluate on")


def test_train_config_without_the_needed_key_is_one_line_naming_the_key(checkpoint, capsys):
    (checkpoint / "train_config.yaml").write_text("seed: 1\n")
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"checkpoint={checkpoint}", "threads=1"])
    with pytest.raises(SystemExit):
        evaluate.main(cfg)
    assert capsys.readouterr().err == (f"error: {checkpoint / 'train_config.yaml'}: no data in it; "
                                       "pass data=... to say what to evaluate on\n")


def test_weights_of_another_shape_are_one_line_naming_key_and_shapes(checkpoint, tiny_model_dir):
    two_labels = BERTClassifier(BertEncoder.from_pretrained(tiny_model_dir), 2)
    with pytest.raises(UserError) as refused:
        load_weights(checkpoint, two_labels)
    message = str(refused.value)
    assert "\n" not in message and "size mismatch for head.weight" in message
    assert "torch.Size([3, 32])" in message and "torch.Size([2, 32])" in message
