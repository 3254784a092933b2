"""model/packed_linear.py: a packed classifier computes what the unpacked one computes, on padded
batches, for every pooling and fusable activation; it refuses to be saved; inference switches it."""
import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from data.tokenizer import load_tokenizer
from common.errors import UserError
from inference.predictor import Predictor
from inference.batches import prepare_for_inference
from model.encoders.bert import BertEncoder
from model.checkpoint import ClassifierInfo, load_checkpoint, save_checkpoint
from model.classifier import BERTClassifier
from model.packed_linear import FUSED_ACTIVATIONS, PackedLinear, PackedSelfAttention, can_pack, pack_linears
from tests.conftest import run_script, tiny_config

pytestmark = pytest.mark.skipif(not can_pack(torch.float32), reason="this torch build has no oneDNN packing")


def tiny_classifier(pooling="pooler", hidden_act="gelu", seed=0) -> BERTClassifier:
    torch.manual_seed(seed)
    encoder = BertEncoder(dataclasses.replace(tiny_config(50), hidden_act=hidden_act))
    classifier = BERTClassifier(encoder, num_classes=3, pooling=pooling).eval()
    with torch.no_grad():  # BERT's std 0.02 makes attention nearly uniform; larger weights make it matter
        for parameter in classifier.parameters():
            parameter.normal_(std=0.3)
    return classifier


def padded_batch(seed=1):
    """Five sequences of different lengths, padded to the longest."""
    generator = torch.Generator().manual_seed(seed)
    valid_length = torch.tensor([11, 3, 7, 1, 9])
    token_ids = torch.randint(5, 50, (5, 11), generator=generator)
    token_ids[torch.arange(11)[None, :] >= valid_length[:, None]] = 0
    return token_ids, valid_length, torch.randint(0, 2, (5, 11), generator=generator)


@pytest.mark.parametrize("pooling", ["pooler", "cls", "mean"])
@pytest.mark.parametrize("hidden_act", sorted(FUSED_ACTIVATIONS))
def test_packed_fp32_gives_the_same_logits(pooling, hidden_act):
    plain = tiny_classifier(pooling, hidden_act)
    packed = copy.deepcopy(plain)
    assert pack_linears(packed, "fp32")
    assert not any(isinstance(m, nn.Linear) for m in packed.modules())
    assert all(isinstance(layer.attn, PackedSelfAttention) for layer in packed.encoder.layers)
    batch = padded_batch()
    with torch.inference_mode():
        expected, got = plain(*batch), packed(*batch)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_packed_bf16_is_close_to_autocast():
    if not can_pack(torch.bfloat16):
        pytest.skip("this CPU has no bf16 instructions for oneDNN")
    plain = tiny_classifier()
    packed = copy.deepcopy(plain)
    pack_linears(packed, "bf16")
    batch = padded_batch()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = plain(*batch).float(), packed(*batch).float()
    assert (got - expected).abs().max().item() < 0.02  # bf16 keeps ~3 significant digits


def test_packing_twice_changes_nothing():
    plain = tiny_classifier()
    packed = copy.deepcopy(plain)
    pack_linears(packed, "fp32")
    modules = list(packed.modules())
    assert pack_linears(packed, "fp32")
    assert list(packed.modules()) == modules
    batch = padded_batch()
    with torch.inference_mode():
        torch.testing.assert_close(packed(*batch), plain(*batch), atol=1e-5, rtol=1e-5)


def test_a_packed_model_refuses_to_be_saved():
    packed = tiny_classifier()
    pack_linears(packed, "fp32")
    with pytest.raises(RuntimeError, match="packed for inference"):
        packed.state_dict()


def test_without_onednn_the_model_is_left_as_it_was(monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    plain = tiny_classifier()
    assert not pack_linears(plain, "fp32")
    assert sum(isinstance(m, nn.Linear) for m in plain.modules()) == 2 * 6 + 2  # 6 per layer, pooler, head
    assert not any(isinstance(m, PackedLinear) for m in plain.modules())


def test_prepare_for_inference_follows_pack_weights():
    for pack_weights, expect_packed in ((True, True), (False, False)):
        model = tiny_classifier().train()
        prepare_for_inference(model, "cpu", "fp32", pack_weights)
        assert not model.training
        assert any(isinstance(m, PackedLinear) for m in model.modules()) == expect_packed
    with pytest.raises(UserError, match="pack_weights='yes': expected true or false"):
        prepare_for_inference(tiny_classifier(), "cpu", "fp32", "yes")


def save_tiny_checkpoint(tiny_model_dir, directory):
    torch.manual_seed(0)
    save_checkpoint(directory, BERTClassifier(BertEncoder.from_pretrained(tiny_model_dir), 3),
                    ClassifierInfo(["joy", "anger", "fear"], "pooler", 32), load_tokenizer(tiny_model_dir))


def test_predictor_probabilities_do_not_depend_on_packing(tiny_model_dir, tmp_path):
    save_tiny_checkpoint(tiny_model_dir, tmp_path)
    texts = ["i feel so happy", "mad", "it is a really very terrified day and i was scared"] * 30  # > one batch
    probs = {pack: Predictor(load_checkpoint(tmp_path), torch.device("cpu"), "fp32", batch_size=16,
                             pack_weights=pack).probabilities(texts) for pack in (False, True)}
    np.testing.assert_allclose(probs[True], probs[False], atol=1e-5)
    single = Predictor(load_checkpoint(tmp_path), torch.device("cpu"), "fp32").probabilities(texts[:1])
    np.testing.assert_allclose(single[0], probs[True][0], atol=1e-5)


def test_predict_rejects_a_pack_weights_that_is_not_a_boolean(tiny_model_dir, tmp_path):
    save_tiny_checkpoint(tiny_model_dir, tmp_path)
    result = run_script("predict.py", f"checkpoint={tmp_path}", "pack_weights=yes", "text=hi")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: pack_weights='yes': expected true or false"

