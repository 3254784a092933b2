"""DistilBERT (model_type "distilbert"): six BERT layers without token types or a pooler, its own
config.json spelling (dim, n_layers, ...) and weight names, and no dropout on the attention output.

`sinusoidal_pos_embds: true`: the position table was initialised with sinusoids, which the checkpoint holds;
it is read like any weight and, as transformers 5 does (its table has requires_grad set), trained like one.
"""
from dataclasses import dataclass

from common.errors import UserError
from model.encoders.bert import Embeddings
from model.encoders.blocks import ACTIVATIONS, Encoder, EncoderConfig

# DistilBertConfig's name -> ours
CONFIG_NAMES = {"dim": "hidden_size", "n_layers": "num_hidden_layers", "n_heads": "num_attention_heads",
                "hidden_dim": "intermediate_size", "activation": "hidden_act", "dropout": "hidden_dropout_prob",
                "attention_dropout": "attention_probs_dropout_prob"}


@dataclass
class DistilBertConfig(EncoderConfig):
    type_vocab_size: int = 1  # a single segment: DistilBERT has no token-type embedding
    sinusoidal_pos_embds: bool = False
    model_type: str = "distilbert"

    MODEL_TYPES = ("distilbert",)

    @classmethod
    def from_dict(cls, d: dict, source="config.json"):
        if d.get("activation", "gelu") not in ACTIVATIONS:
            raise UserError(f"{source}: activation={d['activation']!r} is not supported ({', '.join(ACTIVATIONS)})")
        ours = {CONFIG_NAMES.get(k, k): v for k, v in d.items() if k not in CONFIG_NAMES.values()}
        return super().from_dict({**ours, "type_vocab_size": 1, "layer_norm_eps": 1e-12}, source)

    def to_dict(self) -> dict:
        names = {v: k for k, v in CONFIG_NAMES.items()}
        return {names.get(k, k): v for k, v in super().to_dict().items()
                if k not in ("type_vocab_size", "layer_norm_eps")}


class DistilBertEmbeddings(Embeddings):
    def __init__(self, cfg: DistilBertConfig):
        super().__init__(cfg)
        self.token_type = None

    def forward(self, token_ids, segment_ids, attention_mask):
        x = self.word(token_ids) + self.position(self.positions(attention_mask))
        return self.dropout(self.norm(x))


HF_KEY_RULES = [
    (r"embeddings\.word\.", "embeddings.word_embeddings."),
    (r"embeddings\.position\.", "embeddings.position_embeddings."),
    (r"embeddings\.norm\.", "embeddings.LayerNorm."),
    (r"layers\.(\d+)\.attn\.(query|key|value)\.",
     lambda m: f"transformer.layer.{m[1]}.attention.{m[2][0]}_lin."),
    (r"layers\.(\d+)\.attn\.out\.", r"transformer.layer.\1.attention.out_lin."),
    (r"layers\.(\d+)\.attn_norm\.", r"transformer.layer.\1.sa_layer_norm."),
    (r"layers\.(\d+)\.ffn_in\.", r"transformer.layer.\1.ffn.lin1."),
    (r"layers\.(\d+)\.ffn_out\.", r"transformer.layer.\1.ffn.lin2."),
    (r"layers\.(\d+)\.ffn_norm\.", r"transformer.layer.\1.output_layer_norm."),
]


class DistilBertEncoder(Encoder):
    display_name = "DistilBERT"
    config_class = DistilBertConfig
    has_pooler = False
    attention_dropout_out = False
    hf_prefix = "distilbert."
    hf_key_rules = HF_KEY_RULES

    def __init__(self, cfg: DistilBertConfig):
        super().__init__(cfg, DistilBertEmbeddings(cfg))


# DistilBertForSequenceClassification's head on [CLS]: pre_classifier, ReLU, dropout, classifier
HF_HEAD_RULES = [(r"pre_head\.", "pre_classifier."), (r"head\.", "classifier.")]
