"""Data parallelism and gradient accumulation: 2 processes (torchrun, gloo on CPU) and 4 micro-batches
each train the same weights as one process with the same global batch; a DDP run resumes exactly."""
import json
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from common.config import PROJECT_ROOT
from tests.conftest import CLASS_WORDS, FILLER, SPECIAL, make_examples, run_script, tiny_config, write_hf_bert, \
    write_jsonl
from tests.test_resume import assert_bitwise_equal, saved_step

TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
# Sums of gradients over 2 processes or 4 micro-batches are added in another order than over one
# batch: float32 rounding differences, observed ~6e-8 after 20 AdamW steps.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def no_dropout_model(tmp_path_factory):
    """Dropout draws different masks in differently split batches; without it the runs must agree."""
    words = FILLER + [w for ws in CLASS_WORDS.values() for w in ws]
    vocab = SPECIAL + words + [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in words]
    cfg = tiny_config(len(vocab))
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    directory = tmp_path_factory.mktemp("no_dropout_bert")
    write_hf_bert(directory, cfg, vocab)
    return directory


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ddp_data")
    # 330 training examples: 10 full batches of 32 and a last one of 10 (5 per process).
    return {split: write_jsonl(directory / f"{split}.jsonl", make_examples(n, seed))
            for split, n, seed in [("train", 330, 21), ("validation", 60, 22), ("test", 60, 23)]}


def args(model_dir, data, run_dir, *extra):
    return ["train.py", f"model.path={model_dir}", "data=files", f"data.train={data['train']}",
            f"data.validation={data['validation']}", f"data.test={data['test']}", "trainer.batch_size=32",
            "trainer.max_epochs=2", "optim.lr=1e-3", "trainer.precision=fp32", "trainer.threads=1",
            f"hydra.run.dir={run_dir}", "optim.sparse_embedding=false", *extra]  # torchrun's gradients are dense


def train(*script_args, torchrun=False):
    result = run_script(*(TORCHRUN if torchrun else []), *script_args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def weights(run_dir):
    return load_file(str(run_dir / "checkpoints" / "last" / "model.safetensors"))


def max_difference(a, b):
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def single_process(no_dropout_model, data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("single")
    train(*args(no_dropout_model, data, run_dir, "model.dropout=0"))
    return run_dir


def test_two_processes_train_the_weights_of_one_with_the_same_global_batch(single_process, no_dropout_model,
                                                                             data, tmp_path):
    result = train(*args(no_dropout_model, data, tmp_path, "model.dropout=0"), torchrun=True)
    assert "22 steps (11/epoch) of 32 examples = 2 process(es)" in result.stdout
    assert result.stdout.count("epoch 1: val loss") == 1  # rank 1 prints nothing
    difference = max_difference(weights(tmp_path), weights(single_process))
    assert difference < TOLERANCE
    ours, reference = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path, single_process))
    assert ours["steps"] == reference["steps"] == 22
    assert ours["best_validation"]["loss"] == pytest.approx(reference["best_validation"]["loss"], abs=1e-5)
    # Only rank 0 writes: one event file; the other entries are the embedding projector's.
    entries = list((tmp_path / "tensorboard").iterdir())
    assert len([e for e in entries if e.name.startswith("events.out.tfevents")]) == 1
    assert len(entries) == len(list((single_process / "tensorboard").iterdir()))


def test_four_micro_batches_of_8_equal_one_batch_of_32(single_process, no_dropout_model, data, tmp_path):
    train(*args(no_dropout_model, data, tmp_path, "model.dropout=0", "trainer.grad_accum_steps=4"))
    assert max_difference(weights(tmp_path), weights(single_process)) < TOLERANCE


def test_tolerance_separates_different_training(single_process, no_dropout_model, data, tmp_path):
    """Another global batch size (16) lands far outside the tolerance the tests above allow."""
    train(*args(no_dropout_model, data, tmp_path, "model.dropout=0", "trainer.batch_size=16"))
    assert max_difference(weights(tmp_path), weights(single_process)) > 100 * TOLERANCE


def test_accumulation_under_ddp_matches_too(single_process, no_dropout_model, data, tmp_path):
    train(*args(no_dropout_model, data, tmp_path, "model.dropout=0", "trainer.grad_accum_steps=2"), torchrun=True)
    assert max_difference(weights(tmp_path), weights(single_process)) < TOLERANCE


def test_ddp_run_stopped_by_sigterm_resumes_to_bitwise_identical_weights(tiny_model_dir, data, tmp_path):
    """With dropout: every rank's RNG state is saved and restored, not only rank 0's."""
    slow = ("trainer.batch_size=4", "trainer.save_every_steps=5")  # 83 steps per epoch: time to interrupt
    reference = tmp_path / "reference"
    train(*args(tiny_model_dir, data, reference, *slow), torchrun=True)

    interrupted = tmp_path / "interrupted"
    child = subprocess.Popen([sys.executable, *TORCHRUN, *args(tiny_model_dir, data, interrupted, *slow)],
                             cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while saved_step(interrupted) < 20 and child.poll() is None:
        pass
    assert child.poll() is None, "training finished before it could be interrupted"
    child.send_signal(signal.SIGTERM)  # torchrun forwards it to both ranks
    _, stderr = child.communicate(timeout=120)
    assert "stopped by SIGTERM" in stderr and "torchrun --nproc_per_node=2 train.py" in stderr
    stopped_at = saved_step(interrupted)
    assert 20 <= stopped_at < 166

    resumed = train(*args(tiny_model_dir, data, interrupted, *slow, "trainer.resume=auto"), torchrun=True)
    assert f"at step {stopped_at}" in resumed.stdout
    assert_bitwise_equal(weights(interrupted), weights(reference))


@pytest.mark.parametrize("extra, message", [
    (["trainer.batch_size=4", "trainer.grad_accum_steps=8"], "trainer.grad_accum_steps=8 exceeds the 4 examples"),
    (["trainer.grad_accum_steps=0"], "trainer.grad_accum_steps=0 must be at least 1"),
])
def test_impossible_batch_split_is_a_one_line_error(extra, message, tiny_model_dir, data, tmp_path):
    result = run_script(*args(tiny_model_dir, data, tmp_path, *extra))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_global_batch_must_divide_over_processes(tiny_model_dir, data, tmp_path):
    result = run_script(*TORCHRUN, *args(tiny_model_dir, data, tmp_path, "trainer.batch_size=33"))
    assert result.returncode != 0
    assert "trainer.batch_size=33 is the global batch and must divide evenly over 2 processes" in result.stderr
    assert 'train.py", line' not in result.stderr  # torchrun prints its own traceback; ours prints none


def test_srun_tasks_train_like_torchrun(single_process, no_dropout_model, data, tmp_path):
    """Two plain processes with the variables `srun --ntasks=2` sets (no SLURM here): submitit turns them
    into the rendezvous, and the weights match the single process as under torchrun."""
    import os
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    children = []
    for rank in range(2):
        env = {**os.environ, "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "2", "SLURM_STEP_NUM_TASKS": "2",
               "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_NODEID": "0",
               "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_NODELIST": "localhost", "MASTER_PORT": str(port)}
        children.append(subprocess.Popen([sys.executable, *args(no_dropout_model, data, tmp_path, "model.dropout=0")],
                                         cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True))
    outputs = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    assert "2 process(es)" in outputs[0][0] and outputs[1][0] == ""
    assert max_difference(weights(tmp_path), weights(single_process)) < TOLERANCE
