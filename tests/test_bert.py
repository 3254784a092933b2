"""Our encoder equals transformers.BertModel, and loading reports every problem in one error."""
import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from common.errors import UserError
from model.encoders.bert import BertEncoder
from tests.conftest import tiny_config, write_hf_bert

transformers = pytest.importorskip("transformers", reason="transformers is a test-only dependency")


def padded_batch(vocab_size, lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.randint(5, vocab_size, (len(lengths), T), generator=g)
    mask = torch.arange(T)[None] < torch.tensor(lengths)[:, None]
    ids[~mask] = 0
    segments = (torch.arange(T)[None] >= torch.tensor(lengths)[:, None] // 2).long() * mask
    return ids, mask, segments


def assert_matches_transformers(directory, lengths):
    ours = BertEncoder.from_pretrained(directory).eval()
    theirs = transformers.BertModel.from_pretrained(directory).eval()
    ids, mask, segments = padded_batch(ours.config.vocab_size, lengths)
    with torch.no_grad():
        hidden, pooled = ours(ids, mask, segments)
        ref = theirs(input_ids=ids, attention_mask=mask.long(), token_type_ids=segments)
    # Padded positions are never read downstream; compare the real tokens and the pooled vector.
    assert (hidden - ref.last_hidden_state)[mask].abs().max() < 1e-5
    assert (pooled - ref.pooler_output).abs().max() < 1e-5


def test_random_config_matches_transformers(tmp_path):
    write_hf_bert(tmp_path, tiny_config(100), [f"t{i}" for i in range(100)])
    assert_matches_transformers(tmp_path, [17, 9, 3, 1])


def test_default_checkpoint_matches_transformers(default_model_dir):
    assert_matches_transformers(default_model_dir, [24, 11, 5])


def test_pytorch_model_bin_without_prefix_loads_the_same(tmp_path):
    reference = write_hf_bert(tmp_path / "st", tiny_config(50), [f"t{i}" for i in range(50)], prefix="bert.")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    state = {k.removeprefix("bert."): v for k, v in load_file(str(tmp_path / "st" / "model.safetensors")).items()}
    torch.save(state, bin_dir / "pytorch_model.bin")
    (bin_dir / "config.json").write_text((tmp_path / "st" / "config.json").read_text())
    loaded = BertEncoder.from_pretrained(bin_dir)
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_tf_era_gamma_beta_names_load(tmp_path):
    write_hf_bert(tmp_path, tiny_config(50), [f"t{i}" for i in range(50)])
    state = load_file(str(tmp_path / "model.safetensors"))
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in state.items()}
    save_file(renamed, str(tmp_path / "model.safetensors"))
    BertEncoder.from_pretrained(tmp_path)


def test_mismatched_weights_are_reported_together(tmp_path):
    write_hf_bert(tmp_path, tiny_config(50), [f"t{i}" for i in range(50)])
    state = load_file(str(tmp_path / "model.safetensors"))
    del state["bert.pooler.dense.bias"]
    state["bert.extra.weight"] = torch.zeros(1)
    state["bert.embeddings.word_embeddings.weight"] = torch.zeros(51, 32)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(UserError) as e:
        BertEncoder.from_pretrained(tmp_path)
    message = str(e.value)
    assert "\n" not in message
    assert "missing 1 keys (e.g. pooler.bias)" in message
    assert "unexpected 1 keys (e.g. bert.extra.weight)" in message
    assert "embeddings.word.weight (51, 32) vs (50, 32)" in message


class _CreatesFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_pickled_code_in_pytorch_model_bin_is_not_run(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "config.json").write_text(json.dumps(tiny_config(50).to_dict()))
    with open(tmp_path / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": _CreatesFile(marker)}, f)
    with pytest.raises(UserError, match="refused to load"):
        BertEncoder.from_pretrained(tmp_path)
    assert not marker.exists()


def test_directory_without_weights_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(tiny_config(50).to_dict()))
    with pytest.raises(UserError, match="no model.safetensors or pytorch_model.bin"):
        BertEncoder.from_pretrained(tmp_path)
