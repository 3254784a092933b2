"""inference/ensemble.py: several checkpoints answer as one, with the mean of their probabilities."""
import numpy as np
import pytest
import torch

from common.errors import UserError
from data.tokenizer import load_tokenizer
from inference.ensemble import EnsemblePredictor
from inference.predictor import Predictor
from model.encoders.bert import BertEncoder
from model.checkpoint import ClassifierInfo, load_checkpoint, save_checkpoint
from model.classifier import BERTClassifier

TEXTS = ["i feel so happy", "really furious today", "scared", "the day was very long and it is mad"]


def tiny_predictor(directory, encoder_dir, seed, **info):
    """A tiny random BERT with a large random head (far-apart logits, so members disagree)."""
    info = {"labels": ["joy", "anger", "fear"], "pooling": "mean", "max_len": 32, **info}
    torch.manual_seed(seed)
    model = BERTClassifier(BertEncoder.from_pretrained(encoder_dir), len(info["labels"]), pooling="mean")
    torch.nn.init.normal_(model.head.weight, std=2.0)
    save_checkpoint(directory, model, ClassifierInfo(**info), load_tokenizer(encoder_dir))
    return Predictor(load_checkpoint(directory), "cpu", "fp32", 8, pack_weights=False)


def test_an_ensemble_answers_with_the_mean_of_its_members_probabilities(tiny_model_dir, tmp_path):
    members = [tiny_predictor(tmp_path / "a", tiny_model_dir, 0),
               tiny_predictor(tmp_path / "b", tiny_model_dir, 1, temperature=2.0)]
    ensemble = EnsemblePredictor(members, ["a", "b"])
    each = [m.probabilities(TEXTS) for m in members]
    probabilities = ensemble.probabilities(TEXTS)
    np.testing.assert_allclose(probabilities, (each[0] + each[1]) / 2, atol=1e-6)
    np.testing.assert_array_equal(ensemble.decision.predict(probabilities), probabilities.argmax(1))
    assert ensemble.labels == ["joy", "anger", "fear"]


@pytest.mark.parametrize("other, message", [
    ({"labels": ["joy", "fear", "anger"]}, "b and a have different labels"),
    ({"multi_label": True, "thresholds": [0.5, 0.5, 0.5]}, "b: multi-label checkpoint"),
])
def test_members_that_cannot_be_averaged_are_refused(other, message, tiny_model_dir, tmp_path):
    members = [tiny_predictor(tmp_path / "a", tiny_model_dir, 0), tiny_predictor(tmp_path / "b", tiny_model_dir, 1,
                                                                                   **other)]
    with pytest.raises(UserError, match=message):
        EnsemblePredictor(members, ["a", "b"])
    with pytest.raises(UserError, match="at least two checkpoints"):
        EnsemblePredictor(members[:1], ["a"])
