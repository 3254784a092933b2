"""Each dair-ai emotion recipe in conf/experiment/ trains from the CLI on the real data and encoder (a
few steps: that it runs end to end, with its own settings, not what it scores; README and BENCHMARKS
hold the full runs). kobert_emotion, which needs a KoBERT directory, runs in tests/test_korean.py."""
import json

import pytest
import yaml

from tests.conftest import run_script

RECIPES = {  # recipe -> settings it must reach the run with
    "emotion_distilbert_recipe": {("optim", "lr"): 2e-5, ("trainer", "batch_size"): 64},
    "emotion_best": {("optim", "lr"): 1e-4, ("trainer", "max_epochs"): 4},
    "emotion_knobs": {("optim", "lr"): 2e-4, ("optim", "layer_decay"): 0.85, ("loss", "label_smoothing"): 0.1},
}


def test_emotion_recipes_train_end_to_end(shared_datasets, default_model_dir, tmp_path):
    result = run_script("train.py", "-m", f"experiment={','.join(RECIPES)}", "trainer.max_steps=3",
                        "trainer.analysis=false", f"hydra.sweep.dir={tmp_path}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for job, (recipe, settings) in enumerate(RECIPES.items()):
        run_dir = tmp_path / str(job)
        config = yaml.safe_load((run_dir / "checkpoints" / "best" / "train_config.yaml").read_text())
        assert config["data"]["name"] == "emotion", recipe
        for (group, key), value in settings.items():
            assert config[group][key] == value, (recipe, group, key)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["steps"] == 3 and 0 <= metrics["test"]["accuracy"] <= 1, recipe


def test_the_goemotions_recipe_trains_a_multi_label_model(shared_datasets, default_model_dir, tmp_path):
    result = run_script("train.py", "experiment=goemotions", "trainer.max_steps=3", "trainer.analysis=false",
                        f"hydra.run.dir={tmp_path}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((tmp_path / "checkpoints" / "best" / "classifier.json").read_text())
    assert info["multi_label"] and len(info["labels"]) == 28 and len(info["thresholds"]) == 28
    assert info["pooling"] == "mean"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 3 and {"micro_f1", "macro_f1", "mean_ap"} <= set(metrics["test"])
