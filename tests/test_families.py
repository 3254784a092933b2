"""Every encoder family equals transformers: tiny random models built by transformers from configs, saved
as transformers saves them, loaded by us (model/encoders/families.py). Hidden states, pooled outputs, the family's
own classification head's logits and the gradients agree within 1e-5 on padded batches, single texts and
pairs; unknown model types and mismatched weights are refused in one line."""
import json

import pytest
import torch

from common.errors import UserError
from model.classifier import BERTClassifier
from model.encoders.families import FAMILIES, hf_head_name, load_encoder
from model.hf_classifier import load_hf_classifier

transformers = pytest.importorskip("transformers", reason="transformers is a test-only dependency")

VOCAB = 99
SHAPE = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
ROBERTA_SHAPE = dict(SHAPE, max_position_embeddings=66, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                     type_vocab_size=1)
CONFIGS = {
    "bert": lambda: transformers.BertConfig(**SHAPE, max_position_embeddings=64),
    "roberta": lambda: transformers.RobertaConfig(**ROBERTA_SHAPE),
    "xlm-roberta": lambda: transformers.XLMRobertaConfig(**ROBERTA_SHAPE),
    "camembert": lambda: transformers.CamembertConfig(**ROBERTA_SHAPE),
    "electra": lambda: transformers.ElectraConfig(**SHAPE, embedding_size=32, max_position_embeddings=64),
    "electra-projected": lambda: transformers.ElectraConfig(**SHAPE, embedding_size=16, max_position_embeddings=64),
    "distilbert": lambda: transformers.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4,
                                                        hidden_dim=64, max_position_embeddings=64),
    "distilbert-sinusoidal": lambda: transformers.DistilBertConfig(
        vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64,
        sinusoidal_pos_embds=True, activation="relu"),
    # a local window of 8 (4 each side) on layer 1, global layers 0 and 2: sequences of 17 and 40 reach past it
    "modernbert": lambda: transformers.ModernBertConfig(
        **MODERNBERT_SHAPE, global_attn_every_n_layers=2, global_rope_theta=500.0, local_rope_theta=50.0),
    # every bias and norm bias on, mean pooling, rope_parameters and layer_types as transformers 5 writes them
    "modernbert-mean": lambda: transformers.ModernBertConfig(
        **MODERNBERT_SHAPE, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 80.0}},
        attention_bias=True, mlp_bias=True, norm_bias=True, classifier_bias=True, classifier_pooling="mean"),
    # DeBERTa-v3 / mDeBERTa-v3's settings; 8 buckets, so that 40 tokens reach the log-bucketed distances
    "deberta-v2": lambda: transformers.DebertaV2Config(
        **SHAPE, max_position_embeddings=64, relative_attention=True, pos_att_type=["p2c", "c2p"],
        position_buckets=8, max_relative_positions=64, share_att_key=True, norm_rel_ebd="layer_norm",
        position_biased_input=False, type_vocab_size=0),
    # DeBERTa-v2's (xlarge): absolute positions too, the convolution, own position projections, distances
    # clipped at 16 without buckets; and embed_proj, token types, a single position term
    "deberta-v2-conv": lambda: transformers.DebertaV2Config(
        **SHAPE, max_position_embeddings=64, relative_attention=True, pos_att_type="c2p|p2c",
        max_relative_positions=16, share_att_key=False, position_biased_input=True, conv_kernel_size=3,
        conv_act="gelu", embedding_size=16, type_vocab_size=2),
    "deberta-v2-c2p": lambda: transformers.DebertaV2Config(
        **SHAPE, max_position_embeddings=64, relative_attention=True, pos_att_type=["c2p"], position_buckets=16,
        share_att_key=False, position_biased_input=False, norm_rel_ebd="layer_norm"),
}
MODERNBERT_SHAPE = dict(SHAPE, num_hidden_layers=3, local_attention=8, max_position_embeddings=64, pad_token_id=0,
                        bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)
PAIRED = {"bert", "electra", "electra-projected", "deberta-v2", "deberta-v2-conv"}  # token_type_ids given


def saved(tmp_path, name, kind, num_labels=3, seed=0):
    """A random transformers model of family `name` (AutoModel or AutoModelForSequenceClassification),
    saved with save_pretrained; returns (directory, the model)."""
    torch.manual_seed(seed)
    config = CONFIGS[name]()
    config.num_labels = num_labels
    auto = transformers.AutoModel if kind == "base" else transformers.AutoModelForSequenceClassification
    model = auto.from_config(config).eval()
    directory = tmp_path / f"{name}-{kind}"
    model.save_pretrained(directory)
    return directory, model


def padded_batch(pad_id, lengths, pairs=False, seed=0):
    """Right-padded ids (pad_id in the padding, never inside the text), the mask, segment ids."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.randint(5, VOCAB, (len(lengths), T), generator=g)
    mask = torch.arange(T)[None] < torch.tensor(lengths)[:, None]
    ids[~mask] = pad_id
    segments = ((torch.arange(T)[None] >= torch.tensor(lengths)[:, None] // 2) & mask).long() if pairs \
        else torch.zeros_like(ids)
    return ids, mask, segments


def hf_inputs(name, ids, mask, segments):
    inputs = {"input_ids": ids, "attention_mask": mask.long()}
    if name in PAIRED:
        inputs["token_type_ids"] = segments
    return inputs


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("lengths", [[17, 9, 3, 1], [40, 2]], ids=["padded", "long-padding"])
def test_encoder_hidden_states_match_transformers(tmp_path, name, lengths):
    directory, theirs = saved(tmp_path, name, "base")
    ours = load_encoder(directory).eval()
    pairs = name in PAIRED
    ids, mask, segments = padded_batch(ours.config.pad_token_id, lengths, pairs)
    with torch.no_grad():
        hidden, pooled = ours(ids, mask, segments)
        ref = theirs(**hf_inputs(name, ids, mask, segments))
    assert (hidden - ref.last_hidden_state)[mask].abs().max() < 1e-5
    if pooled is not None:
        assert (pooled - ref.pooler_output).abs().max() < 1e-5
    else:
        assert getattr(ref, "pooler_output", None) is None


@pytest.mark.parametrize("name", CONFIGS)
def test_family_head_logits_and_gradients_match_transformers(tmp_path, name):
    directory, theirs = saved(tmp_path, name, "classifier")
    ours, labels, multi_label, _, family = load_hf_classifier(directory)
    assert labels == ["LABEL_0", "LABEL_1", "LABEL_2"] and not multi_label
    ids, mask, segments = padded_batch(ours.encoder.config.pad_token_id, [12, 7, 2], name in PAIRED)
    target = torch.tensor([0, 2, 1])
    ours.eval(), theirs.eval()  # dropout off on both: gradients of the same function
    logits = ours(ids, mask.sum(-1), segments)
    ref = theirs(**hf_inputs(name, ids, mask, segments)).logits
    assert (logits - ref).abs().max() < 1e-5
    torch.nn.functional.cross_entropy(logits, target).backward()
    torch.nn.functional.cross_entropy(ref, target).backward()
    their_grads = {k: p.grad for k, p in theirs.named_parameters() if p.grad is not None}
    compared = 0
    for key, p in ours.named_parameters():
        if key.startswith("encoder.pooler.") and ours.pooling != "pooler":
            assert p.grad is None  # the family head never reads it
            continue
        hf = (ours.encoder.hf_name(key.removeprefix("encoder.")) if key.startswith("encoder.")
              else hf_head_name(family, key))
        assert (p.grad - their_grads[hf]).abs().max() < 1e-5, key
        compared += 1
    assert compared == len(their_grads)


def test_roberta_positions_start_after_the_padding_index(tmp_path):
    """The case a BERT embedding gets wrong without a word: the first token's position row is pad + 1."""
    directory, _ = saved(tmp_path, "roberta", "base")
    encoder = load_encoder(directory)
    mask = torch.tensor([[True, True, True, False]])
    assert encoder.embeddings.positions(mask).tolist() == [[2, 3, 4, 1]]


def test_sinusoidal_position_table_is_read_as_stored(tmp_path):
    directory, theirs = saved(tmp_path, "distilbert-sinusoidal", "base")
    table = load_encoder(directory).embeddings.position.weight
    assert torch.equal(table, theirs.embeddings.position_embeddings.weight.detach())
    assert abs(table[1, 0].item() - torch.sin(torch.tensor(1.0)).item()) < 1e-6  # sin(position / 10000^0)


def test_modernbert_config_as_the_hub_spells_it(tmp_path):
    """The original checkpoints' config.json (global_attn_every_n_layers, global/local_rope_theta, no layer_types
    or rope_parameters): the same model for us and for transformers."""
    directory, _ = saved(tmp_path, "modernbert", "base")
    config = json.loads((directory / "config.json").read_text())
    for key in ("layer_types", "rope_parameters"):
        del config[key]
    (directory / "config.json").write_text(json.dumps({**config, "global_attn_every_n_layers": 3,
                                                       "global_rope_theta": 700.0, "local_rope_theta": 30.0}))
    theirs = transformers.AutoModel.from_pretrained(directory).eval()
    assert theirs.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"]
    ours = load_encoder(directory).eval()
    ids, mask, _ = padded_batch(0, [30, 11])
    with torch.no_grad():
        assert (ours(ids, mask)[0] - theirs(input_ids=ids, attention_mask=mask.long()).last_hidden_state)[mask] \
            .abs().max() < 1e-5


def test_linear_head_refuses_the_pooler_a_family_lacks(tmp_path):
    directory, _ = saved(tmp_path, "distilbert", "base")
    with pytest.raises(UserError, match="DistilBERT has no pooler; use model.pooling=cls or mean"):
        BERTClassifier(load_encoder(directory), 3, pooling="pooler")
    assert BERTClassifier(load_encoder(directory), 3, pooling="mean").pooling == "mean"


@pytest.mark.parametrize("model_type", ["t5", "albert", "gpt2"])
def test_unknown_model_type_is_one_line(tmp_path, model_type):
    directory, _ = saved(tmp_path, "bert", "base")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "model_type": model_type}))
    with pytest.raises(UserError) as e:
        load_encoder(directory)
    assert "\n" not in str(e.value)
    assert f"model_type={model_type!r} is not supported" in str(e.value) and "config.json" in str(e.value)


def test_a_weight_that_does_not_map_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    directory, _ = saved(tmp_path, "electra-projected", "base")
    state = load_file(str(directory / "model.safetensors"))
    del state["embeddings_project.weight"]
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(UserError, match="weights do not fit the ELECTRA config: missing 1 keys"):
        load_encoder(directory)


def test_every_family_is_tested():
    assert set(FAMILIES) <= {name.split("-")[0] if name.startswith(("electra", "distilbert")) else name
                             for name in CONFIGS}


@pytest.mark.parametrize("name", ["roberta", "xlm-roberta", "distilbert", "deberta-v2"])
def test_continued_pretraining_writes_the_familys_base_model(tmp_path, name):
    """training/mlm.py's output directory: transformers reads it as the family's base model, same outputs."""
    from training.mlm import save_encoder

    directory, _ = saved(tmp_path, name, "base")
    encoder = load_encoder(directory).eval()

    class NoTokenizerFiles:  # the tokenizer is not what this test is about
        def save(self, out):
            pass

    save_encoder(tmp_path / "mlm", encoder, NoTokenizerFiles(), source={"test": name})
    theirs = transformers.AutoModel.from_pretrained(tmp_path / "mlm").eval()
    assert type(theirs).__name__.lower().startswith(name.replace("-", ""))
    ids, mask, segments = padded_batch(encoder.config.pad_token_id, [9, 4])
    with torch.no_grad():
        hidden, _ = encoder(ids, mask, segments)
        ref = theirs(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    assert (hidden - ref)[mask].abs().max() < 1e-5


def test_deberta_buckets_are_transformers_buckets():
    """Every distance up to 600 with v3's 256 buckets over 512 positions, and small tables: the same rows."""
    from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

    from model.encoders.deberta_v2 import log_bucket
    distance = torch.arange(-600, 601)
    for buckets, max_position in [(256, 512), (8, 64), (6, 20)]:
        assert torch.equal(log_bucket(distance, buckets, max_position),
                           make_log_bucket_position(distance, buckets, max_position).long())


@pytest.mark.parametrize("key, value", [("pos_att_type", "p2p|c2p"), ("pooler_dropout", 0.1),
                                        ("pooler_hidden_act", "tanh"), ("norm_rel_ebd", "batch_norm"),
                                        ("conv_kernel_size", 4), ("attention_head_size", 4)])
def test_deberta_options_not_computed_are_refused_in_one_line(tmp_path, key, value):
    directory, _ = saved(tmp_path, "deberta-v2", "base")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, key: value}))
    with pytest.raises(UserError) as e:
        load_encoder(directory)
    assert "\n" not in str(e.value) and "config.json" in str(e.value) and f"{key}={value!r}" in str(e.value)


def test_deberta_parameters_sit_at_the_depths_layer_decay_reads(tmp_path):
    """The relative table with the embeddings, the convolution with the first layer (optim.layer_decay)."""
    from training.optim import parameter_depth

    directory, _ = saved(tmp_path, "deberta-v2-conv", "base")
    names = dict(load_encoder(directory).named_parameters())
    depths = {name: parameter_depth(name, 2) for name in names}
    assert depths["embeddings.relative.weight"] == depths["embeddings.word.weight"] == 0
    assert depths["layers.0.conv.conv.weight"] == depths["layers.0.attn.pos_key.weight"] == 1
    assert depths["layers.1.ffn_norm.bias"] == 2 and max(depths.values()) == 2
