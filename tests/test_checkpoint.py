"""model/checkpoint.py: loading builds the classifier without drawing initial weights, yet restores
every tensor that was saved, and leaves torch's initializers and RNG as they were."""
import pytest
import torch
from torch.nn import init

from data.tokenizer import load_tokenizer
from model.encoders.bert import BertEncoder
from model.checkpoint import ClassifierInfo, initial_weights_not_drawn, load_checkpoint, save_checkpoint
from model.classifier import BERTClassifier


def test_loaded_weights_equal_the_saved_ones_and_no_random_numbers_are_drawn(tiny_model_dir, tmp_path):
    torch.manual_seed(0)
    saved = BERTClassifier(BertEncoder.from_pretrained(tiny_model_dir), 3, pooling="mean")
    save_checkpoint(tmp_path, saved, ClassifierInfo(["a", "b", "c"], "mean", 32), load_tokenizer(tiny_model_dir))
    rng = torch.get_rng_state()
    loaded = load_checkpoint(tmp_path).model
    assert torch.equal(torch.get_rng_state(), rng)
    expected = saved.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_initializers_come_back_even_after_an_error():
    original = init.normal_
    with pytest.raises(ValueError), initial_weights_not_drawn():
        assert init.normal_ is not original
        raise ValueError
    assert init.normal_ is original
    torch.manual_seed(0)
    assert torch.nn.Linear(4, 4).weight.abs().sum() > 0  # initializing again
