"""BERT (model_type "bert"): word + position + token-type embeddings, post-LayerNorm layers, a pooler.

Module names are our own and shared by every family (model/encoders/blocks.py); `HF_KEY_RULES` maps them to the
names of Hugging Face `BertModel` state dicts, so loading and exporting are a rename, not a
re-implementation. The other families list only where their names differ.
"""
from dataclasses import dataclass

import torch
from torch import nn

from model.encoders.blocks import Encoder, EncoderConfig
from model.dropout import Dropout


@dataclass
class BertConfig(EncoderConfig):
    model_type: str = "bert"


class Embeddings(nn.Module):
    """Positions count from 0 at the first token; `position_offset` shifts them (RoBERTa)."""

    def __init__(self, cfg: EncoderConfig, embedding_size: int | None = None):
        super().__init__()
        size = embedding_size or cfg.hidden_size
        self.word = nn.Embedding(cfg.vocab_size, size, padding_idx=cfg.pad_token_id)
        self.position = nn.Embedding(cfg.max_position_embeddings, size)
        self.token_type = nn.Embedding(cfg.type_vocab_size, size)
        self.norm = nn.LayerNorm(size, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.hidden_dropout_prob)

    def positions(self, attention_mask):
        return torch.arange(attention_mask.shape[1], device=attention_mask.device)

    def forward(self, token_ids, segment_ids, attention_mask):
        x = self.word(token_ids) + self.position(self.positions(attention_mask)) + self.token_type(segment_ids)
        return self.dropout(self.norm(x))

    def vocabulary_renumbered(self, pad_token_id: int):
        """Called when model.trim_vocab renumbers the vocabulary: positions here do not depend on it."""


# (our name pattern, Hugging Face name), Hugging Face names written without the family's prefix.
HF_KEY_RULES = [
    (r"embeddings\.word\.", "embeddings.word_embeddings."),
    (r"embeddings\.position\.", "embeddings.position_embeddings."),
    (r"embeddings\.token_type\.", "embeddings.token_type_embeddings."),
    (r"embeddings\.norm\.", "embeddings.LayerNorm."),
    (r"layers\.(\d+)\.attn\.(query|key|value)\.", r"encoder.layer.\1.attention.self.\2."),
    (r"layers\.(\d+)\.attn\.out\.", r"encoder.layer.\1.attention.output.dense."),
    (r"layers\.(\d+)\.attn_norm\.", r"encoder.layer.\1.attention.output.LayerNorm."),
    (r"layers\.(\d+)\.ffn_in\.", r"encoder.layer.\1.intermediate.dense."),
    (r"layers\.(\d+)\.ffn_out\.", r"encoder.layer.\1.output.dense."),
    (r"layers\.(\d+)\.ffn_norm\.", r"encoder.layer.\1.output.LayerNorm."),
    (r"pooler\.", "pooler.dense."),
]
# BertForSequenceClassification's head: dropout, then `classifier` on the pooler's output
HF_HEAD_RULES = [(r"head\.", "classifier.")]


class BertEncoder(Encoder):
    config_class = BertConfig
    hf_prefix = "bert."
    hf_key_rules = HF_KEY_RULES

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg, Embeddings(cfg))


def ours_to_hf(key: str, prefix="bert.") -> str:
    """Our encoder key -> BertModel's (`prefix` "": without BertFor*'s "bert.")."""
    return prefix + BertEncoder.hf_name(key, with_prefix=False)


def forward_flops(cfg: EncoderConfig, length: int) -> int:
    """Matmul FLOPs (2 per multiply-add) of the encoder's forward pass over one sequence of `length`
    real tokens: per token and layer the Q/K/V/out projections, the FFN, and QK^T plus AV against
    `length` keys; then the pooler once, on [CLS]. Embedding lookups are not matmuls. Training costs
    about 3x this (the backward pass does twice the forward's matmuls)."""
    h, i = cfg.hidden_size, cfg.intermediate_size
    per_token_per_layer = 2 * (4 * h * h + 2 * h * i) + 2 * 2 * length * h
    return cfg.num_hidden_layers * per_token_per_layer * length + 2 * h * h
