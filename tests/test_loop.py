"""The training loop in process (no subprocess): train.py's train(cfg) on a composed config, and a stop
request mid-epoch whose resume ends in the same weights as a run that was never stopped."""
import json
import signal

import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file

from common.config import PROJECT_ROOT
from training.resume import TrainingProgress
from tests.conftest import sigterm_after_step
from train import train


def composed(tiny_model_dir, tiny_data, *overrides):
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[
            f"model.path={tiny_model_dir}", "data=files", *(f"data.{s}={p}" for s, p in tiny_data.items()),
            "trainer.batch_size=16", "trainer.max_epochs=4", "trainer.precision=fp32", "optim.lr=3e-3",
            "model.pooling=mean",
            "trainer.log_every=4", "trainer.save_every_steps=7", "trainer.analysis=false",
            f"trainer.threads={torch.get_num_threads()}", *overrides])


def last_weights(run_dir):
    return load_file(str(run_dir / "checkpoints" / "last" / "model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("in_process")
    best = train(composed(tiny_model_dir, tiny_data), run_dir)
    return run_dir, best


def test_train_in_process_returns_the_monitored_value_and_writes_the_run(uninterrupted):
    run_dir, best = uninterrupted
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert best == metrics["best_validation"]["accuracy"]
    assert metrics["steps"] == 4 * 15 and [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4]
    assert metrics["test"]["accuracy"] > 0.5  # the class words are easy: a working loop learns them
    state = json.loads((run_dir / "checkpoints" / "last" / "training_state.json").read_text())
    progress = TrainingProgress(**state["progress"])
    assert (progress.step, progress.epoch, progress.batch_in_epoch) == (60, 4, 0)
    assert (run_dir / "checkpoints" / "best" / "model.safetensors").is_file()


def test_stop_request_saves_and_the_resumed_run_ends_in_the_same_weights(uninterrupted, tiny_model_dir, tiny_data,
                                                                         tmp_path):
    with sigterm_after_step(9), pytest.raises(SystemExit) as stopped:
        train(composed(tiny_model_dir, tiny_data), tmp_path)
    assert stopped.value.code == 128 + signal.SIGTERM
    saved = json.loads((tmp_path / "checkpoints" / "last" / "training_state.json").read_text())["progress"]
    assert (saved["step"], saved["epoch"], saved["batch_in_epoch"]) == (9, 0, 9)

    train(composed(tiny_model_dir, tiny_data, "trainer.resume=auto"), tmp_path)
    reference = last_weights(uninterrupted[0])
    resumed = last_weights(tmp_path)
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
