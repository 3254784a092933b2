"""model/dropout.py: the cheaper CPU dropout drops at the configured rate, keeps the expected value,
follows the seed, and the hand-written attention it enables computes what SDPA computes."""
import pytest
import torch
import torch.nn.functional as F

import model.dropout
from model.encoders.bert import BertEncoder
from model.classifier import attention_mask_from
from model.dropout import Dropout, dropout, keep_mask
from tests.conftest import tiny_config


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drops_at_the_rate_and_keeps_the_expected_value(p):
    torch.manual_seed(0)
    kept = keep_mask(torch.Size([1000, 1000]), p, "cpu")
    assert kept.float().mean().item() == pytest.approx(1 - p, abs=2e-3)
    out = dropout(torch.ones(1000, 1000), p, training=True)
    assert torch.allclose(out[out != 0], torch.tensor(1 / (1 - p)))
    assert out.mean().item() == pytest.approx(1.0, abs=5e-3)


def test_rows_of_the_mask_are_not_correlated():
    """Each 64-bit number feeds four neighbouring elements: they must still be independent."""
    torch.manual_seed(1)
    kept = keep_mask(torch.Size([250_000, 4]), 0.5, "cpu").float()
    correlation = torch.corrcoef(kept.T)
    assert (correlation - torch.eye(4)).abs().max().item() < 0.01


def test_same_seed_same_mask_and_identity_when_not_training():
    x = torch.randn(7, 13)
    torch.manual_seed(3)
    a = dropout(x, 0.1, training=True)
    torch.manual_seed(3)
    assert torch.equal(a, dropout(x, 0.1, training=True))
    assert dropout(x, 0.1, training=False) is x and dropout(x, 0.0, training=True) is x


def test_fast_false_is_torchs_dropout():
    x = torch.randn(64, 32)
    layer = Dropout(0.2)
    layer.fast = False
    torch.manual_seed(5)
    ours = layer(x)
    torch.manual_seed(5)
    assert torch.equal(ours, F.dropout(x, 0.2, True))


def test_handwritten_training_attention_equals_sdpa_when_nothing_is_dropped(monkeypatch):
    torch.manual_seed(0)
    encoder = BertEncoder(tiny_config(50))
    token_ids = torch.randint(5, 50, (3, 9))
    mask = attention_mask_from(torch.tensor([9, 4, 1]), 9)  # padding, down to a single real token
    encoder.eval()
    reference = encoder(token_ids, mask)
    monkeypatch.setattr(model.dropout, "keep_mask", lambda shape, p, device: torch.ones(shape, dtype=torch.bool))
    encoder.train()  # hand-written attention, with a mask that keeps everything and scales by 1/(1-p)
    for module in encoder.modules():
        if isinstance(module, Dropout):
            module.p = 1e-9  # on the training path, scale 1/(1 - 1e-9): exactly what eval computes
    hidden, pooled = encoder(token_ids, mask)
    assert torch.allclose(hidden[mask], reference[0][mask], atol=1e-5)
    assert torch.allclose(pooled, reference[1], atol=1e-5)
