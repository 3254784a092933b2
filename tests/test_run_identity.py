"""A run directory knows what it is: a resume on other data or with other settings is refused in one line
before anything is trained, unless the change is named in trainer.resume_changes; then the new value is
the one in effect and every record (train_config.yaml, run_identity.json, metrics.json) says so. A resume
into a new run directory ends with test metrics of the best checkpoint it carried over."""
import json
import shutil

import pytest
from omegaconf import OmegaConf

import training.loop
from common.errors import UserError
from evaluation.predictions import read_predictions
from tests.conftest import make_examples, write_jsonl
from training.optim import cosine_with_warmup
from tests.test_loop import composed
from train import train


ONE_EPOCH = ("trainer.max_epochs=1", "trainer.batch_size=48")  # 5 steps of the 240 tiny examples


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, tiny_data, tmp_path_factory):
    """One epoch (5 steps) of the tiny model: checkpoints/best, checkpoints/last and metrics.json."""
    run_dir = tmp_path_factory.mktemp("identity_run")
    train(composed(tiny_model_dir, tiny_data, *ONE_EPOCH), run_dir)
    return run_dir


def copy_of(run_dir, tmp_path):
    shutil.copytree(run_dir, tmp_path / "run")
    return tmp_path / "run"


def last_files(run_dir):
    return {f.name: f.read_bytes() for f in (run_dir / "checkpoints" / "last").iterdir()}


def assert_refused(cfg, run_dir, message):
    before = last_files(run_dir)
    with pytest.raises(UserError, match=message) as refused:
        train(cfg, run_dir)
    assert "\n" not in str(refused.value)
    assert last_files(run_dir) == before  # nothing trained, nothing saved


def test_resume_with_other_label_names_is_refused(finished_run, tiny_model_dir, tiny_data, tmp_path):
    renamed = {"joy": "0", "anger": "1", "fear": "2"}  # as many classes, under other names
    files = {split: write_jsonl(tmp_path / f"{split}.jsonl",
                                [{**row, "label": renamed[row["label"]]} for row in make_examples(n, seed)])
             for split, n, seed in [("train", 240, 1), ("validation", 60, 2), ("test", 60, 3)]}
    run_dir = copy_of(finished_run, tmp_path)
    assert_refused(composed(tiny_model_dir, files, *ONE_EPOCH, "trainer.resume=auto"), run_dir,
                   r"the label names differ: the run has \[anger, fear, joy\], this data gives \[0, 1, 2\]")


def test_resume_on_another_training_file_with_the_same_labels_is_refused(finished_run, tiny_model_dir, tiny_data,
                                                                           tmp_path):
    other = {**tiny_data, "train": write_jsonl(tmp_path / "train.jsonl", make_examples(240, seed=99))}
    run_dir = copy_of(finished_run, tmp_path)
    assert_refused(composed(tiny_model_dir, other, *ONE_EPOCH, "trainer.resume=auto"), run_dir,
                   r"the train split differs .* pass trainer.resume_changes=\[data.train\]")


def test_resume_with_a_changed_hyperparameter_is_refused_naming_old_and_new(finished_run, tiny_model_dir, tiny_data,
                                                                             tmp_path):
    run_dir = copy_of(finished_run, tmp_path)
    hydra_record = run_dir / ".hydra" / "config.yaml"  # what Hydra writes before train.py's code runs
    hydra_record.parent.mkdir()
    hydra_record.write_text("optim:\n  lr: 0.5\n")
    assert_refused(composed(tiny_model_dir, tiny_data, *ONE_EPOCH, "optim.lr=0.5", "trainer.resume=auto"),
                   run_dir, r"optim.lr was 0.003, now 0.5; pass trainer.resume_changes=\[optim.lr\]")
    # the refused command leaves the run's record as the run is: the config it was trained with
    recorded = OmegaConf.load(hydra_record)
    assert recorded.optim.lr == 0.003 and recorded.trainer.max_epochs == 1


def test_the_seed_cannot_change_on_resume_even_when_named(finished_run, tiny_model_dir, tiny_data, tmp_path):
    run_dir = copy_of(finished_run, tmp_path)
    assert_refused(composed(tiny_model_dir, tiny_data, *ONE_EPOCH, "seed=7", "trainer.resume=auto",
                            "trainer.resume_changes=[seed]"), run_dir,
                   "seed was 42, now 7; it cannot change on resume")


def test_settings_that_do_not_change_the_maths_may_differ_on_resume(finished_run, tiny_model_dir, tiny_data,
                                                                     tmp_path):
    run_dir = copy_of(finished_run, tmp_path)
    train(composed(tiny_model_dir, tiny_data, *ONE_EPOCH, "trainer.log_every=3", "trainer.top_losses=5",
                   "trainer.resume=auto"), run_dir)
    assert "resume_changes" not in json.loads((run_dir / "metrics.json").read_text())


def test_an_allowed_change_is_in_effect_and_recorded(finished_run, tiny_model_dir, tiny_data, tmp_path, monkeypatch):
    run_dir = copy_of(finished_run, tmp_path)
    seen = {}
    fit = training.loop.fit

    def spying_fit(run, progress):
        seen["base_lrs"] = list(run.scheduler.base_lrs)
        seen["initial_lr"] = run.optimizer.param_groups[0]["initial_lr"]
        seen["lr"] = run.optimizer.param_groups[0]["lr"]
        return fit(run, progress)

    monkeypatch.setattr("train.fit", spying_fit)
    train(composed(tiny_model_dir, tiny_data, "trainer.batch_size=48", "trainer.max_epochs=2", "optim.lr=1e-3",
                   "trainer.resume=auto", "trainer.resume_changes=[optim.lr,trainer.max_epochs]"), run_dir)
    assert seen["initial_lr"] == 1e-3 and set(seen["base_lrs"]) == {1e-3}  # the new peak rate, not the saved one
    # the rate of the first resumed step: the schedule of the new 10 steps (1 of warmup) at step 5, new peak
    assert seen["lr"] == pytest.approx(1e-3 * cosine_with_warmup(5, 1, 10))
    last = run_dir / "checkpoints" / "last"
    assert OmegaConf.load(last / "train_config.yaml").optim.lr == 1e-3
    changes = json.loads((run_dir / "metrics.json").read_text())["resume_changes"]
    assert {c["key"]: (c["old"], c["new"], c["step"]) for c in changes} == {
        "optim.lr": (0.003, 0.001, 5), "trainer.max_epochs": (1, 2, 5)}
    assert json.loads((last / "run_identity.json").read_text())["changes"] == changes
    assert json.loads((last / "training_state.json").read_text())["progress"]["step"] == 10


def test_resume_into_a_new_run_directory_ends_with_test_metrics(finished_run, tiny_model_dir, tiny_data, tmp_path):
    """Nothing is left to train, so no validation of the new session saves a best checkpoint: the run's
    best must come from the directory it resumed from."""
    new_dir = tmp_path / "new"
    train(composed(tiny_model_dir, tiny_data, *ONE_EPOCH, f"trainer.resume={finished_run}"), new_dir)
    ours, original = (json.loads((d / "metrics.json").read_text()) for d in (new_dir, finished_run))
    assert ours["test"] == original["test"] and ours["best_validation"] == original["best_validation"]
    digests = [read_predictions(d).texts_sha256 for d in (new_dir, finished_run)]
    assert digests[0] is not None and digests[0] == digests[1]  # the same test texts, as compare will check
    assert ((new_dir / "checkpoints" / "best" / "model.safetensors").read_bytes()
            == (finished_run / "checkpoints" / "best" / "model.safetensors").read_bytes())
