"""ELECTRA discriminators (model_type "electra"; KoELECTRA, KcELECTRA): BERT's layers over embeddings of
their own width `embedding_size`, projected to `hidden_size` by `embeddings_project` when the two differ.
No pooler: ElectraForSequenceClassification reads the first token through its own head."""
from dataclasses import dataclass

from torch import nn

from model.encoders.bert import HF_KEY_RULES, Embeddings
from model.encoders.blocks import Encoder, EncoderConfig


@dataclass
class ElectraConfig(EncoderConfig):
    embedding_size: int | None = None  # None: hidden_size
    model_type: str = "electra"

    MODEL_TYPES = ("electra",)

    @classmethod
    def from_dict(cls, d: dict, source="config.json"):
        cfg = super().from_dict(d, source)
        cfg.embedding_size = cfg.embedding_size or cfg.hidden_size
        return cfg


class ElectraEmbeddings(Embeddings):
    def __init__(self, cfg: ElectraConfig):
        super().__init__(cfg, cfg.embedding_size or cfg.hidden_size)
        width = cfg.embedding_size or cfg.hidden_size
        self.project = nn.Linear(width, cfg.hidden_size) if width != cfg.hidden_size else None

    def forward(self, token_ids, segment_ids, attention_mask):
        x = super().forward(token_ids, segment_ids, attention_mask)
        return self.project(x) if self.project is not None else x


class ElectraEncoder(Encoder):
    display_name = "ELECTRA"
    config_class = ElectraConfig
    has_pooler = False
    hf_prefix = "electra."
    # ElectraModel keeps the projection beside the embeddings, not inside them; the rest is BERT's naming
    hf_key_rules = [(r"embeddings\.project\.", "embeddings_project."), *HF_KEY_RULES]

    def __init__(self, cfg: ElectraConfig):
        super().__init__(cfg, ElectraEmbeddings(cfg))


# ElectraForSequenceClassification's head on [CLS]: dropout, dense, GELU, dropout, out_proj
HF_HEAD_RULES = [(r"pre_head\.", "classifier.dense."), (r"head\.", "classifier.out_proj.")]
