"""ModernBERT's own behaviour beyond parity with transformers (tests/test_families.py): its masks with padding
and past the local window, first_token_only on a local last layer, its 8,192 positions as data.max_len, and the
config options it does not compute refused in one line."""
import json
from unittest import mock

import pytest
import torch

from common.checks import encoder_positions
from common.errors import UserError
from model.encoders.families import encoder_from_config
from model.encoders.modernbert import ModernBertConfig, ModernBertEncoder

# layers: global, local, local (window of 4 on either side); sequences of 30 reach far past it
TINY = {"model_type": "modernbert", "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 3,
        "num_attention_heads": 4, "intermediate_size": 48, "local_attention": 8, "global_attn_every_n_layers": 3,
        "pad_token_id": 0}


def tiny_encoder(**overrides) -> ModernBertEncoder:
    torch.manual_seed(0)
    return ModernBertEncoder(ModernBertConfig.from_dict({**TINY, **overrides})).eval()


def test_layer_types_alternate_global_and_local():
    assert tiny_encoder().config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"]
    assert isinstance(tiny_encoder().layers[0].attn_norm, torch.nn.Identity)  # the embeddings' norm precedes it


def softmax_attention(q, k, v, attn_mask, dropout_p=0.0):
    """Attention as written in the paper: NaN for a query that may see no key, where SDPA's CPU kernel
    quietly gives zeros (and other kernels need not)."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return scores.masked_fill(~attn_mask, float("-inf")).softmax(-1) @ v


@mock.patch.object(torch.nn.functional, "scaled_dot_product_attention", softmax_attention)
def test_padding_changes_nothing_and_stays_finite():
    """A text alone and the same text padded far past the window in a batch: the same hidden states. The
    padded positions, which see no real key in the local layers, are finite whatever computes the softmax
    (a NaN there would reach every real token through the values, and mean pooling's 0 x NaN)."""
    encoder = tiny_encoder()
    ids = torch.randint(1, 50, (2, 30), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 3:] = False
    ids[1, 3:] = 0
    with torch.no_grad():
        batched, _ = encoder(ids, mask)
        alone, _ = encoder(ids[1:, :3], mask[1:, :3])
    assert torch.isfinite(batched).all()
    assert (batched[1, :3] - alone[0]).abs().max() < 1e-5


def test_local_layers_see_only_their_window():
    """A token more than local_attention // 2 positions away reaches position 0 only through a global layer."""
    encoder = tiny_encoder(global_attn_every_n_layers=99)  # the first layer global, the others local
    encoder.layers[0].attn.out.weight.data.zero_()  # the global layer's attention contributes nothing
    ids = torch.randint(1, 50, (1, 20), generator=torch.Generator().manual_seed(2))
    changed = ids.clone()
    changed[0, 15] = (ids[0, 15] + 1) % 49 + 1
    mask = torch.ones(1, 20, dtype=torch.bool)
    with torch.no_grad():
        before, after = encoder(ids, mask)[0], encoder(changed, mask)[0]
    # two local layers of half-width 4: position 0 sees 8 positions at most; 15 is out of reach
    assert torch.equal(before[0, 0], after[0, 0])
    assert not torch.equal(before[0, 11], after[0, 11])


def test_first_token_only_is_exact_on_a_local_last_layer():
    """(A global last layer: tests/test_families.py's cls-pooled logits and gradients against transformers.)"""
    encoder = tiny_encoder(global_attn_every_n_layers=2)
    ids = torch.randint(1, 50, (3, 30), generator=torch.Generator().manual_seed(3))
    mask = torch.arange(30)[None] < torch.tensor([30, 12, 5])[:, None]
    full, _ = encoder(ids, mask)
    first, _ = encoder(ids, mask, first_token_only=True)
    assert first.shape == (3, 1, 32) and (first[:, 0] - full[:, 0]).abs().max() < 1e-6
    grads = [torch.autograd.grad(out[:, 0].pow(2).sum(), list(encoder.parameters()), allow_unused=True)
             for out in (full, first)]
    for a, b in zip(*grads):
        assert (a is None and b is None) or (a - b).abs().max() < 1e-5  # summation order only


def test_8192_positions_are_data_max_len(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "max_position_embeddings": 8192}))
    assert encoder_positions(tmp_path) == 8192
    encoder = encoder_from_config(tmp_path / "config.json").eval()
    ids = torch.randint(1, 50, (1, 600))  # rotary positions have no table: any length within the config's
    with torch.no_grad():
        assert torch.isfinite(encoder(ids, torch.ones_like(ids, dtype=torch.bool))[0]).all()


@pytest.mark.parametrize("key, value, message", [
    ("rope_parameters", {"full_attention": {"rope_type": "yarn", "rope_theta": 1e4}},
     "rope_parameters.full_attention.rope_type='yarn' is not supported"),
    ("rope_scaling", {"rope_type": "linear", "factor": 2.0}, "rope_scaling=.* is not supported"),
    ("classifier_activation", "relu", "classifier_activation='relu' is not supported"),
    ("classifier_pooling", "max", "classifier_pooling='max' is not supported"),
    ("hidden_activation", "silu", "hidden_activation='silu' is not supported"),
    ("layer_types", ["full_attention", "sliding_attention"], "layer_types must name 3 layers"),
    ("is_decoder", True, "is_decoder=True is not supported"),
])
def test_options_not_computed_are_refused_in_one_line(tmp_path, key, value, message):
    (tmp_path / "config.json").write_text(json.dumps({**TINY, key: value}))
    with pytest.raises(UserError, match=message) as e:
        encoder_from_config(tmp_path / "config.json")
    assert "config.json" in str(e.value) and "\n" not in str(e.value)
