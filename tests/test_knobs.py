"""Issue 14's fine-tuning knobs, each checked to change what it claims (a run that ignored the knob would
fail here): class weights, label smoothing, early stopping (also across a resume), layer-wise lr decay,
validation every N steps; and what every run now keeps: per-example predictions, calibration."""
import json
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from safetensors.torch import load_file
from sklearn.utils.class_weight import compute_class_weight

from common.config import PROJECT_ROOT
from common.errors import UserError
from training.objective import build_objective
from training.optim import build_optimizer
from evaluation.predictions import read_predictions
from model.encoders.bert import BertConfig, BertEncoder
from model.checkpoint import load_checkpoint
from model.classifier import BERTClassifier
from tests.conftest import sigterm_after_step
from train import train

LABELS = ["anger", "fear", "joy"]  # sorted names of the tiny data; 15 steps of 16 per epoch


def composed(tiny_model_dir, tiny_data, *overrides):
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[
            f"model.path={tiny_model_dir}", "data=files", *(f"data.{s}={p}" for s, p in tiny_data.items()),
            "trainer.batch_size=16", "trainer.max_epochs=2", "trainer.precision=fp32", "optim.lr=3e-3",
            "model.pooling=mean", "trainer.log_every=5", "trainer.save_every_steps=null", "trainer.analysis=false",
            f"trainer.threads={torch.get_num_threads()}", *overrides])


def loss_config(**values):
    return OmegaConf.create({"class_weights": None, "label_smoothing": 0.0, "pos_weight": None, **values})


def head_weight(run_dir):
    return load_file(str(run_dir / "checkpoints" / "last" / "model.safetensors"))["head.weight"]


@pytest.fixture(scope="module")
def plain_run(tiny_model_dir, tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("plain")
    train(composed(tiny_model_dir, tiny_data, "trainer.max_steps=6"), run_dir)
    return run_dir


# ---- class weights and label smoothing


def test_balanced_class_weights_are_scikit_learns():
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    objective, named = build_objective(loss_config(class_weights="balanced"), LABELS, labels)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert np.allclose(objective.weights.numpy(), expected)
    assert named == {name: round(float(w), 6) for name, w in zip(LABELS, expected)}


def test_named_class_weights_weigh_the_loss_and_unnamed_labels_weigh_one():
    objective, named = build_objective(loss_config(class_weights={"fear": 3.0}), LABELS, np.array([0, 1, 2]))
    assert named == {"anger": 1.0, "fear": 3.0, "joy": 1.0}
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 1, 2, 1])
    per_example = F.cross_entropy(logits, labels, reduction="none")
    assert torch.isclose(objective.summed_loss(logits, labels), (per_example * objective.weights[labels]).sum())


def test_an_unknown_label_in_the_weights_is_a_one_line_error():
    with pytest.raises(UserError, match=r"loss.class_weights.surprise: not one of the labels \(anger, fear, joy\)"):
        build_objective(loss_config(class_weights={"surprise": 2.0}), LABELS, np.array([0, 1, 2]))


def test_label_smoothing_is_torchs():
    objective, _ = build_objective(loss_config(label_smoothing=0.2), LABELS, np.array([0, 1, 2]))
    logits, labels = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    log_p = logits.log_softmax(-1)
    by_hand = -(0.8 * log_p[torch.arange(4), labels] + 0.2 * log_p.mean(-1)).sum()
    assert torch.isclose(objective.summed_loss(logits, labels), by_hand, atol=1e-5)


@pytest.mark.parametrize("override", ["loss.class_weights={anger:5.0}", "loss.label_smoothing=0.3"])
def test_a_loss_knob_changes_what_training_learns_and_is_recorded(override, plain_run, tiny_model_dir, tiny_data,
                                                                  tmp_path):
    train(composed(tiny_model_dir, tiny_data, "trainer.max_steps=6", override), tmp_path)
    assert not torch.equal(head_weight(tmp_path), head_weight(plain_run))
    info = json.loads((tmp_path / "checkpoints" / "best" / "classifier.json").read_text())
    stored = OmegaConf.load(tmp_path / "checkpoints" / "best" / "train_config.yaml")
    if "class_weights" in override:
        assert info["loss_weights"] == {"anger": 5.0, "fear": 1.0, "joy": 1.0}
    else:
        assert info["loss_weights"] is None and stored.loss.label_smoothing == 0.3


# ---- early stopping


def test_early_stopping_ends_the_run_and_says_why(tiny_model_dir, tiny_data, tmp_path, capsys):
    # No validation can gain more than 1.0 accuracy: the second one is the first without gain.
    cfg = composed(tiny_model_dir, tiny_data, "trainer.max_epochs=4", "trainer.patience=1", "trainer.min_delta=1.0")
    train(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2] and metrics["steps"] == 30
    assert metrics["stopped_early"].startswith("early stopping: validation accuracy gained no more than 1 over")
    assert "early stopping" in capsys.readouterr().out
    train(OmegaConf.merge(cfg, {"trainer": {"resume": "auto"}}), tmp_path)  # nothing left to train
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 30


def test_early_stopping_counts_survive_a_resume(tiny_model_dir, tiny_data, tmp_path):
    args = ("trainer.max_epochs=4", "trainer.patience=1", "trainer.min_delta=1.0")
    with sigterm_after_step(20), pytest.raises(SystemExit) as stopped:  # inside epoch 2, after one validation
        train(composed(tiny_model_dir, tiny_data, *args), tmp_path)
    assert stopped.value.code == 128 + signal.SIGTERM
    train(composed(tiny_model_dir, tiny_data, *args, "trainer.resume=auto"), tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2] and metrics["steps"] == 30


# ---- validation every N steps


def test_validation_every_n_steps_adds_validations_inside_epochs(tiny_model_dir, tiny_data, tmp_path):
    train(composed(tiny_model_dir, tiny_data, "trainer.val_every_steps=4"), tmp_path)
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert [h["step"] for h in history] == [4, 8, 12, 15, 16, 20, 24, 28, 30]


# ---- layer-wise learning-rate decay


def test_layer_decay_gives_lower_layers_smaller_learning_rates():
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    model = BERTClassifier(BertEncoder(config), 3)
    optimizer = build_optimizer(model, 1e-3, 0.01, layer_decay=0.5, num_layers=3)
    lr_of = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert lr_of == pytest.approx({"embeddings": 1e-3 * 0.5 ** 4, "layer_00": 1e-3 * 0.5 ** 3,
                                   "layer_01": 1e-3 * 0.5 ** 2, "layer_02": 1e-3 * 0.5, "head": 1e-3})
    grouped = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(grouped) == len(set(map(id, grouped))) == len(list(model.parameters()))
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert all((id(p) in decayed) == (p.dim() >= 2) for p in model.parameters())


def test_layer_decay_trains_and_logs_each_depths_rate(tiny_model_dir, tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(composed(tiny_model_dir, tiny_data, "trainer.max_steps=10", "optim.layer_decay=0.5"), tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = [t for t in events.Tags()["scalars"] if t.startswith("train/lr_by_depth/")]
    assert sorted(tags) == ["train/lr_by_depth/embeddings", "train/lr_by_depth/head",
                            "train/lr_by_depth/layer_00", "train/lr_by_depth/layer_01"]  # the tiny encoder: 2 layers
    head, embeddings = (events.Scalars(f"train/lr_by_depth/{n}")[-1].value for n in ("head", "embeddings"))
    assert embeddings == pytest.approx(head * 0.5 ** 3)


# ---- what every run keeps: per-example predictions; calibration on request


def test_a_run_writes_the_test_and_validation_predictions_it_scored(plain_run, tiny_data):
    metrics = json.loads((plain_run / "metrics.json").read_text())
    test = read_predictions(plain_run / "predictions_test.npz")
    assert test.labels == LABELS and len(test) == 60 and np.array_equal(test.index, np.arange(60))
    gold = [LABELS.index(json.loads(line)["label"]) for line in tiny_data["test"].read_text().splitlines()]
    assert np.array_equal(test.gold, gold)
    assert np.array_equal(test.predicted, test.probabilities.argmax(1))
    assert np.allclose(test.probabilities.sum(1), 1, atol=1e-5)
    assert (test.predicted == test.gold).mean() == pytest.approx(metrics["test"]["accuracy"])
    assert len(read_predictions(plain_run / "predictions_validation.npz")) == 60


@pytest.fixture(scope="module")
def calibrated_run(tiny_model_dir, tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("calibrated")
    train(composed(tiny_model_dir, tiny_data, "trainer.max_steps=20", "trainer.calibrate=true"), run_dir)
    return run_dir


def test_calibration_fits_a_temperature_that_predict_applies_and_keeps_every_label(calibrated_run):
    tmp_path = calibrated_run
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    calibration = metrics["calibration"]
    loaded = load_checkpoint(tmp_path / "checkpoints" / "best")
    assert loaded.info.temperature == pytest.approx(calibration["temperature"]) and loaded.info.temperature != 1.0
    # The temperature minimises the validation NLL, so that loss cannot rise; ECE is reported both ways.
    assert metrics["best_checkpoint_validation"]["loss"] <= metrics["history"][-1]["loss"] + 1e-6
    assert {"validation_ece_before", "validation_ece_after", "test_ece_before", "test_ece_after"} <= set(calibration)
    test = read_predictions(tmp_path / "predictions_test.npz")
    assert test.temperature == loaded.info.temperature
    assert np.allclose(test.probabilities, torch.softmax(torch.from_numpy(test.logits) / test.temperature, -1))
    assert np.array_equal(test.predicted, test.logits.argmax(1))  # argmax unchanged


def test_single_label_data_refuses_a_multi_label_monitor(tiny_model_dir, tiny_data, tmp_path):
    with pytest.raises(UserError, match="trainer.monitor=mean_ap exists for multi-label data only"):
        train(composed(tiny_model_dir, tiny_data, "trainer.monitor=mean_ap"), tmp_path)


def test_an_export_folds_the_temperature_into_the_head(calibrated_run, tmp_path):
    pytest.importorskip("onnxruntime")
    from tests.conftest import onnx_logits, run_script

    checkpoint = calibrated_run / "checkpoints" / "best"
    result = run_script("-m", "model.export", f"checkpoint={checkpoint}", "format=onnx", f"out={tmp_path / 'onnx'}")
    assert result.returncode == 0, result.stderr[-2000:]
    text = "i feel so happy today"
    logits = onnx_logits(tmp_path / "onnx", checkpoint, text)
    ours = json.loads(run_script("predict.py", f"checkpoint={checkpoint}", "pack_weights=false",
                                 f"text={text}").stdout)["probs"]
    assert torch.softmax(torch.from_numpy(logits), -1).tolist() == pytest.approx([ours[n] for n in LABELS],
                                                                                     abs=1e-4)
