"""DeBERTa-v2, DeBERTa-v3 and mDeBERTa-v3 (model_type "deberta-v2"): BERT's post-LayerNorm layers with
disentangled attention, He et al. 2021.

Each attention score adds to content-to-content q_i.k_j the content-to-position term q_i.Kr[d(i,j)] (c2p)
and the position-to-content term k_j.Qr[d(i,j)] (p2c), where Kr and Qr are the layer's key and query
projections (share_att_key) or its own pos_key / pos_query projections of one relative-position table
shared by every layer, and d(i,j) is the distance i - j, log-bucketed beyond position_buckets / 2 and
clipped to the table. The sum is scaled by 1 / sqrt(head_dim x (1 + number of position terms)).
The position terms are an additive bias, so the attention itself is torch's scaled_dot_product_attention.

Beside that: word (+ absolute position, position_biased_input) (+ token type) embeddings, projected by
embed_proj when embedding_size != hidden_size, LayerNormed, zeroed at padding; the relative table's own
LayerNorm (norm_rel_ebd "layer_norm"); and (conv_kernel_size > 0) a convolution over the embeddings added
to the first layer's output. No pooler: DebertaV2ForSequenceClassification's ContextPooler is the family
head (model/encoders/families.py): dense + pooler_hidden_act on [CLS], dropout, classifier.
"""
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from common.errors import UserError
from model.encoders.bert import HF_KEY_RULES as BERT_KEY_RULES
from model.encoders.blocks import ACTIVATIONS, Encoder, EncoderConfig, Layer, attend
from model.dropout import Dropout

POSITION_TERMS = ("c2p", "p2c")
CONV_ACTIVATIONS = {"tanh": torch.tanh, **ACTIVATIONS}


@dataclass
class DebertaV2Config(EncoderConfig):
    type_vocab_size: int = 0
    layer_norm_eps: float = 1e-7
    embedding_size: int | None = None  # None: hidden_size
    position_biased_input: bool = True  # absolute position embeddings added to the word embeddings
    relative_attention: bool = False
    max_relative_positions: int = -1  # < 1: max_position_embeddings
    position_buckets: int = -1  # > 0: distances log-bucketed into this many per direction
    pos_att_type: list = field(default_factory=list)  # of c2p, p2c
    share_att_key: bool = False
    norm_rel_ebd: str = "none"  # or "layer_norm"
    conv_kernel_size: int = 0
    conv_groups: int = 1
    conv_act: str = "tanh"
    pooler_hidden_act: str = "gelu"
    pooler_hidden_size: int | None = None
    pooler_dropout: float = 0.0
    model_type: str = "deberta-v2"

    MODEL_TYPES = ("deberta-v2",)

    @classmethod
    def from_dict(cls, d: dict, source="config.json"):
        terms = d.get("pos_att_type") or []
        if isinstance(terms, str):  # the original checkpoints' "p2c|c2p"
            terms = [t.strip() for t in terms.lower().split("|")]
        cfg = super().from_dict({**d, "pos_att_type": list(terms)}, source)
        cfg.embedding_size = cfg.embedding_size or cfg.hidden_size
        cfg.pooler_hidden_size = cfg.pooler_hidden_size or cfg.hidden_size
        cfg.norm_rel_ebd = cfg.norm_rel_ebd.lower().replace(" ", "")
        head_size = d.get("attention_head_size", cfg.hidden_size // cfg.num_attention_heads)
        refusals = [
            (any(t not in POSITION_TERMS for t in cfg.pos_att_type), "pos_att_type", "entries c2p, p2c"),
            (cfg.norm_rel_ebd not in ("none", "layer_norm"), "norm_rel_ebd",
             "none or layer_norm"),
            (head_size * cfg.num_attention_heads != cfg.hidden_size, "attention_head_size",
             "hidden_size / num_attention_heads"),
            (cfg.conv_kernel_size > 0 and cfg.conv_kernel_size % 2 == 0, "conv_kernel_size", "odd, or 0"),
            (cfg.conv_act not in CONV_ACTIVATIONS, "conv_act", ", ".join(CONV_ACTIVATIONS)),
            # the family head (model/encoders/families.py) is dense + GELU on [CLS] with no dropout before it
            (cfg.pooler_hidden_act != "gelu", "pooler_hidden_act", "gelu"),
            (cfg.pooler_hidden_size != cfg.hidden_size, "pooler_hidden_size", "hidden_size"),
            (cfg.pooler_dropout != 0, "pooler_dropout", "0"),
        ]
        for refused, key, supported in refusals:
            if refused:
                raise UserError(f"{source}: {key}={d.get(key, getattr(cfg, key, None))!r} is not supported "
                                f"(only {supported})")
        return cfg

    @property
    def relative_span(self) -> int:
        """Distances -span..span-1 have rows in the relative table (2 x span rows)."""
        if self.position_buckets > 0:
            return self.position_buckets
        return self.max_relative_positions if self.max_relative_positions > 0 else self.max_position_embeddings

    @property
    def bucket_limit(self) -> int:
        return self.max_relative_positions if self.max_relative_positions > 0 else self.max_position_embeddings


def log_bucket(distance: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """Distances within buckets / 2 kept; longer ones on a log scale up to max_position, sign kept. In
    float32 and in the same operations as transformers' make_log_bucket_position: ceil() at the bucket
    edges gives the same integers only then."""
    sign, mid = torch.sign(distance), buckets // 2
    magnitude = torch.where((distance < mid) & (distance > -mid), torch.tensor(mid - 1).type_as(distance),
                            distance.abs())
    log_position = torch.ceil(torch.log(magnitude / mid) / torch.log(torch.tensor((max_position - 1) / mid))
                              * (mid - 1)) + mid
    return torch.where(magnitude <= mid, distance.type_as(log_position), log_position * sign).long()


def relative_rows(cfg: DebertaV2Config, length: int) -> tuple[int, torch.Tensor]:
    """For a sequence of `length`: (first table row used, (2 x length - 1,) row of each distance i - j from
    -(length - 1) to length - 1, counted from that first row). On the CPU: a few hundred integers."""
    distance = torch.arange(-(length - 1), length)
    if cfg.position_buckets > 0:
        distance = log_bucket(distance, cfg.position_buckets, cfg.bucket_limit)
    span = cfg.relative_span
    rows = torch.clamp(distance + span, 0, 2 * span - 1)
    first = int(rows.min())
    return first, rows - first


class DebertaEmbeddings(nn.Module):
    """The token embeddings, and the relative-position table every layer's attention reads (kept here so that
    the embedding-depth settings, layer-wise lr decay and freeze_embeddings, treat both tables alike)."""

    def __init__(self, cfg: DebertaV2Config):
        super().__init__()
        width = cfg.embedding_size
        self.word = nn.Embedding(cfg.vocab_size, width, padding_idx=cfg.pad_token_id)
        self.position = nn.Embedding(cfg.max_position_embeddings, width) if cfg.position_biased_input else None
        self.token_type = nn.Embedding(cfg.type_vocab_size, width) if cfg.type_vocab_size > 0 else None
        self.project = nn.Linear(width, cfg.hidden_size, bias=False) if width != cfg.hidden_size else None
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.hidden_dropout_prob)
        self.relative = nn.Embedding(2 * cfg.relative_span, cfg.hidden_size) if cfg.relative_attention else None
        self.relative_norm = (nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
                              if cfg.relative_attention and "layer_norm" in cfg.norm_rel_ebd else None)
        self.config = cfg

    def forward(self, token_ids, segment_ids, attention_mask):
        x = self.word(token_ids)
        if self.position is not None:
            x = x + self.position(torch.arange(token_ids.shape[1], device=token_ids.device))
        if self.token_type is not None:
            x = x + self.token_type(segment_ids)
        if self.project is not None:
            x = self.project(x)
        # zeroed padding: what the convolution reads beyond the last token
        return self.dropout(self.norm(x) * attention_mask.unsqueeze(-1).to(x.dtype))

    def relative_positions(self, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(the relative table's rows that distances in `length` tokens reach, normalised; (length, length)
        index of query i's row for key j into them). Only those rows are projected: 255 instead of 512 for
        128 tokens with DeBERTa-v3's 256 buckets."""
        first, rows = relative_rows(self.config, length)
        table = self.relative.weight[first:first + int(rows.max()) + 1]
        if self.relative_norm is not None:
            table = self.relative_norm(table)
        positions = torch.arange(length, device=device)
        return table, rows.to(device)[positions[:, None] - positions[None, :] + length - 1]

    def vocabulary_renumbered(self, pad_token_id: int):
        """Called when model.trim_vocab renumbers the vocabulary: nothing here depends on it."""


class DisentangledSelfAttention(nn.Module):
    def __init__(self, cfg: DebertaV2Config):
        super().__init__()
        C = cfg.hidden_size
        self.n_head = cfg.num_attention_heads
        self.query, self.key, self.value, self.out = (nn.Linear(C, C) for _ in range(4))
        self.terms = [t for t in POSITION_TERMS if t in cfg.pos_att_type] if cfg.relative_attention else []
        own_projections = cfg.relative_attention and not cfg.share_att_key
        self.pos_key = nn.Linear(C, C) if own_projections and "c2p" in self.terms else None
        self.pos_query = nn.Linear(C, C) if own_projections and "p2c" in self.terms else None
        # transformers counts the configured terms even without relative_attention
        factor = 1 + sum(t in cfg.pos_att_type for t in POSITION_TERMS)
        self.scale = (C // self.n_head * factor) ** -0.5
        self.position_dropout = Dropout(cfg.hidden_dropout_prob)
        self.probs_dropout = Dropout(cfg.attention_probs_dropout_prob)

    def forward(self, x, key_mask, queries=None, relative=None):
        """relative: DebertaEmbeddings.relative_positions' (table rows, index); None without relative_attention."""
        queries = x if queries is None else queries
        B, T, C = x.shape
        heads = lambda t: t.view(t.shape[0], t.shape[1], self.n_head, C // self.n_head).transpose(1, 2)  # noqa: E731
        q, k, v = heads(self.query(queries)), heads(self.key(x)), heads(self.value(x))  # (B, heads, T, head_dim)
        mask = key_mask
        if self.terms:
            table, index = relative
            table, index = self.position_dropout(table).unsqueeze(0), index[:q.shape[2]]  # (Tq, T)
            bias = 0
            if "c2p" in self.terms:  # query i . position key of d(i, j)
                position_keys = heads((self.pos_key or self.key)(table))  # (1, heads, rows, head_dim)
                bias = torch.gather(q @ position_keys.transpose(-2, -1), -1, index.expand(B, self.n_head, -1, -1))
            if "p2c" in self.terms:  # key j . position query of d(i, j)
                position_queries = heads((self.pos_query or self.query)(table))
                by_key = torch.gather(k @ position_queries.transpose(-2, -1), -1,
                                      index.T.expand(B, self.n_head, -1, -1))  # (B, heads, T, Tq)
                bias = bias + by_key.transpose(-2, -1)
            mask = (bias * self.scale).masked_fill(~key_mask, float("-inf"))
        y = attend(q, k, v, mask, self.probs_dropout, self.scale)
        return self.out(y.transpose(1, 2).reshape(B, q.shape[2], C))


class Convolution(nn.Module):
    """conv_kernel_size > 0: a convolution over the embeddings, added to the first layer's output."""

    def __init__(self, cfg: DebertaV2Config):
        super().__init__()
        size = cfg.conv_kernel_size
        self.conv = nn.Conv1d(cfg.hidden_size, cfg.hidden_size, size, padding=(size - 1) // 2, groups=cfg.conv_groups)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.hidden_dropout_prob)
        self.act = CONV_ACTIVATIONS[cfg.conv_act]

    def forward(self, embedded, layer_output, token_mask):
        mask = token_mask[:, :layer_output.shape[1], None]  # (B, T or 1 under first_token_only, 1)
        convolved = self.conv(embedded.transpose(1, 2)).transpose(1, 2)[:, :layer_output.shape[1]]
        convolved = self.act(self.dropout(convolved.masked_fill(~mask, 0.0)))
        return self.norm(layer_output + convolved) * mask.to(layer_output.dtype)


class DebertaLayer(Layer):
    def __init__(self, cfg: DebertaV2Config, with_convolution: bool):
        super().__init__(cfg, attention=DisentangledSelfAttention(cfg))
        self.conv = Convolution(cfg) if with_convolution else None

    def forward(self, x, key_mask, first_token_only=False, relative=None):
        y = super().forward(x, key_mask, first_token_only, relative=relative)
        return y if self.conv is None else self.conv(x, y, key_mask[:, 0, 0])


HF_KEY_RULES = [
    (r"embeddings\.project\.", "embeddings.embed_proj."),
    (r"embeddings\.relative\.", "encoder.rel_embeddings."),
    (r"embeddings\.relative_norm\.", "encoder.LayerNorm."),
    (r"layers\.0\.conv\.conv\.", "encoder.conv.conv."),
    (r"layers\.0\.conv\.norm\.", "encoder.conv.LayerNorm."),
    (r"layers\.(\d+)\.attn\.(query|key|value)\.", r"encoder.layer.\1.attention.self.\2_proj."),
    (r"layers\.(\d+)\.attn\.pos_(query|key)\.", r"encoder.layer.\1.attention.self.pos_\2_proj."),
    *BERT_KEY_RULES,  # the rest is BERT's naming
]


class DebertaV2Encoder(Encoder):
    display_name = "DeBERTa-v2"
    config_class = DebertaV2Config
    has_pooler = False
    hf_prefix = "deberta."
    hf_key_rules = HF_KEY_RULES
    # the task head's ContextPooler, the pretraining heads (RTD, MLM), and the absolute position table the
    # original checkpoints keep without position_biased_input (transformers skips it too)
    hf_unread_keys = re.compile(r"^(pooler\.|lm_predictions\.|mask_predictions\.|embeddings\.position_embeddings\.)")
    onnx_exportable = False
    onnx_refusal = "its relative-position rows are chosen from the sequence length outside the graph"

    def __init__(self, cfg: DebertaV2Config):
        super().__init__(cfg, DebertaEmbeddings(cfg))

    def make_layer(self, cfg: DebertaV2Config, index: int) -> Layer:
        return DebertaLayer(cfg, with_convolution=index == 0 and cfg.conv_kernel_size > 0)

    def forward(self, token_ids, attention_mask, segment_ids=None, first_token_only=False):
        """Encoder.forward's contract; the relative positions are computed once for all layers. Under
        first_token_only the last layer's [CLS] query reads its own row of them: still exact."""
        if segment_ids is None:
            segment_ids = torch.zeros_like(token_ids)
        key_mask = attention_mask[:, None, None, :]
        x = self.embeddings(token_ids, segment_ids, attention_mask)
        relative = (self.embeddings.relative_positions(token_ids.shape[1], token_ids.device)
                    if self.config.relative_attention else None)
        for depth, layer in enumerate(self.layers, start=1):
            x = layer(x, key_mask, first_token_only and depth == len(self.layers), relative=relative)
        return x, None


# DebertaV2ForSequenceClassification's head: ContextPooler (dense + GELU on [CLS]), dropout, classifier
HF_HEAD_RULES = [(r"pre_head\.", "pooler.dense."), (r"head\.", "classifier.")]
