"""ModernBERT (model_type "modernbert"): pre-LayerNorm layers with rotary positions, a GeGLU feed-forward,
and attention that is global every `global_attn_every_n_layers` layers (the first included) and local
elsewhere: a token sees the tokens within local_attention // 2 positions of it on either side. No token
types, no pooler; a final LayerNorm after the last layer.

The layers are our own (not model/encoders/blocks.py's post-LayerNorm Layer: the order of the norms, the fused
query/key/value product, the rotation of queries and keys and the gated feed-forward all differ); the
encoder shell (weight loading, key names, vocabulary trimming) is the shared one.
"""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import UserError
from model.encoders.blocks import ACTIVATIONS, Encoder, EncoderConfig
from model.dropout import Dropout

LAYER_TYPES = ("full_attention", "sliding_attention")
# EncoderConfig's BERT keys, which ModernBERT spells its own way (norm_eps, hidden_activation, ...) or lacks
BERT_ONLY_KEYS = ("hidden_act", "layer_norm_eps", "type_vocab_size", "hidden_dropout_prob",
                  "attention_probs_dropout_prob")


@dataclass
class ModernBertConfig(EncoderConfig):
    """ModernBertConfig's keys, either as transformers 5 writes them (layer_types, rope_parameters) or as
    the original checkpoints on the Hub do (global_attn_every_n_layers, global_rope_theta, local_rope_theta)."""
    vocab_size: int = 50368
    intermediate_size: int = 1152
    hidden_activation: str = "gelu"
    max_position_embeddings: int = 8192
    norm_eps: float = 1e-5
    norm_bias: bool = False
    pad_token_id: int = 50283
    attention_bias: bool = False
    attention_dropout: float = 0.0
    embedding_dropout: float = 0.0
    mlp_bias: bool = False
    mlp_dropout: float = 0.0
    local_attention: int = 128
    global_attn_every_n_layers: int = 3
    global_rope_theta: float = 160_000.0
    local_rope_theta: float = 10_000.0
    classifier_pooling: str = "cls"
    classifier_bias: bool = False
    classifier_activation: str = "gelu"
    layer_types: list = field(default_factory=list)  # per layer: full_attention | sliding_attention
    type_vocab_size: int = 0  # no token types
    model_type: str = "modernbert"

    MODEL_TYPES = ("modernbert",)
    REFUSED = {"is_decoder": False, "add_cross_attention": False, "rope_scaling": None}

    @classmethod
    def from_dict(cls, d: dict, source="config.json"):
        if d.get("hidden_activation", "gelu") not in ACTIVATIONS:
            raise UserError(f"{source}: hidden_activation={d['hidden_activation']!r} is not supported "
                            f"({', '.join(ACTIVATIONS)})")
        if d.get("classifier_activation", "gelu") != "gelu":  # the family head's (model/encoders/families.py)
            raise UserError(f"{source}: classifier_activation={d['classifier_activation']!r} is not supported "
                            "(only 'gelu')")
        if d.get("classifier_pooling", "cls") not in ("cls", "mean"):
            raise UserError(f"{source}: classifier_pooling={d['classifier_pooling']!r} is not supported (cls, mean)")
        d = {**d, **rope_thetas(d.get("rope_parameters"), source)}
        d = {k: v for k, v in d.items() if k not in BERT_ONLY_KEYS}
        cfg = super().from_dict(d, source)
        every = cfg.global_attn_every_n_layers
        cfg.layer_types = list(cfg.layer_types) or [
            "sliding_attention" if i % every else "full_attention" for i in range(cfg.num_hidden_layers)]
        if len(cfg.layer_types) != cfg.num_hidden_layers or not set(cfg.layer_types) <= set(LAYER_TYPES):
            raise UserError(f"{source}: layer_types must name {cfg.num_hidden_layers} layers, each one of "
                            f"{', '.join(LAYER_TYPES)}")
        return cfg

    def to_dict(self) -> dict:
        """Both spellings, so that transformers 4.48+ and 5 read the same model."""
        d = super().to_dict()
        d["rope_parameters"] = {"full_attention": {"rope_type": "default", "rope_theta": self.global_rope_theta},
                                "sliding_attention": {"rope_type": "default", "rope_theta": self.local_rope_theta}}
        return {k: v for k, v in d.items() if k not in BERT_ONLY_KEYS}


def rope_thetas(rope_parameters, source) -> dict:
    """transformers 5's rope_parameters -> global_rope_theta / local_rope_theta; scaled RoPE is refused."""
    thetas = {}
    for layer_type, key in (("full_attention", "global_rope_theta"), ("sliding_attention", "local_rope_theta")):
        parameters = (rope_parameters or {}).get(layer_type) or {}
        if parameters.get("rope_type", "default") != "default":
            raise UserError(f"{source}: rope_parameters.{layer_type}.rope_type={parameters['rope_type']!r} is not "
                            "supported (only 'default')")
        if "rope_theta" in parameters:
            thetas[key] = parameters["rope_theta"]
    return thetas


class ModernBertEmbeddings(nn.Module):
    """Token embeddings and a LayerNorm: positions enter as rotations inside attention, not here."""

    def __init__(self, cfg: ModernBertConfig):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.norm_bias)
        self.dropout = Dropout(cfg.embedding_dropout)
        self.token_type = None  # what model/export.py asks before giving the graph token_type_ids

    def forward(self, token_ids, segment_ids, attention_mask):
        return self.dropout(self.norm(self.word(token_ids)))

    def vocabulary_renumbered(self, pad_token_id: int):
        """Positions do not depend on the vocabulary."""


class Rotary:
    """Rotary position embedding (Su et al.) of one base `theta`: the two halves of each head's query and
    key are rotated by position x theta^(-2i/head_dim), so q.k depends on the distance between them.
    Not a module: its frequencies are no weights, and must stay float32 when the model is cast to bf16."""

    def __init__(self, head_dim: int, theta: float):
        self.inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim)

    def __call__(self, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin), each (length, head_dim), in float32 whatever the autocast."""
        angles = torch.arange(length, device=device, dtype=torch.float)[:, None] * self.inv_freq.to(device)
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos(), angles.sin()


def rotate(x, cos, sin):
    """x rotated by the angles whose cos and sin are given, computed in float32 as transformers does."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return (x.float() * cos + torch.cat((-x2, x1), dim=-1) * sin).to(x.dtype)


def local_window(length: int, half_width: int, device) -> torch.Tensor:
    """(T, T) bool: query i may see key j when |i - j| <= half_width."""
    positions = torch.arange(length, device=device)
    return (positions[:, None] - positions[None, :]).abs() <= half_width


class RotaryAttention(nn.Module):
    def __init__(self, cfg: ModernBertConfig):
        super().__init__()
        self.n_head = cfg.num_attention_heads
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.attention_bias)
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.attention_bias)
        self.dropout_p = cfg.attention_dropout
        self.out_dropout = Dropout(cfg.attention_dropout)

    def forward(self, x, mask, cos, sin, n_queries):
        """mask: bool, broadcastable to (B, heads, T, T); the first `n_queries` positions get outputs."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        q, k = rotate(q[:, :, :n_queries], cos[:n_queries], sin[:n_queries]), rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[..., :n_queries, :],
                                           dropout_p=self.dropout_p if self.training else 0.0)
        return self.out_dropout(self.out(y.transpose(1, 2).reshape(B, n_queries, C)))


class GeGLU(nn.Module):
    """act(x Wi_in) * (x Wi_gate), then Wo: one input product of twice the intermediate width, halved."""

    def __init__(self, cfg: ModernBertConfig):
        super().__init__()
        self.wi = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=cfg.mlp_bias)
        self.wo = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)
        self.act = ACTIVATIONS[cfg.hidden_activation]
        self.dropout = Dropout(cfg.mlp_dropout)

    def forward(self, x):
        value, gate = self.wi(x).chunk(2, dim=-1)
        return self.wo(self.dropout(self.act(value) * gate))


class ModernBertLayer(nn.Module):
    """Pre-LayerNorm block. The first layer has no attention norm: the embeddings' norm precedes it."""

    def __init__(self, cfg: ModernBertConfig, index: int):
        super().__init__()
        self.attention_type = cfg.layer_types[index]
        self.attn_norm = (nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.norm_bias) if index > 0
                          else nn.Identity())
        self.attn = RotaryAttention(cfg)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.norm_bias)
        self.ffn = GeGLU(cfg)

    def forward(self, x, mask, cos, sin, first_token_only=False):
        n_queries = 1 if first_token_only else x.shape[1]
        x = x[:, :n_queries] + self.attn(self.attn_norm(x), mask, cos, sin, n_queries)
        return x + self.ffn(self.ffn_norm(x))


HF_KEY_RULES = [
    (r"embeddings\.word\.", "embeddings.tok_embeddings."),
    (r"embeddings\.norm\.", "embeddings.norm."),
    (r"layers\.(\d+)\.attn\.qkv\.", r"layers.\1.attn.Wqkv."),
    (r"layers\.(\d+)\.attn\.out\.", r"layers.\1.attn.Wo."),
    (r"layers\.(\d+)\.attn_norm\.", r"layers.\1.attn_norm."),
    (r"layers\.(\d+)\.ffn_norm\.", r"layers.\1.mlp_norm."),
    (r"layers\.(\d+)\.ffn\.wi\.", r"layers.\1.mlp.Wi."),
    (r"layers\.(\d+)\.ffn\.wo\.", r"layers.\1.mlp.Wo."),
    (r"final_norm\.", "final_norm."),
]


class ModernBertEncoder(Encoder):
    display_name = "ModernBERT"
    config_class = ModernBertConfig
    has_pooler = False
    hf_prefix = "model."
    hf_key_rules = HF_KEY_RULES
    # onnxruntime's transformer optimizer (inference/onnx_predictor.py) fails on its graph, and the graph
    # is not tested against ours: refused rather than shipped unchecked
    onnx_exportable = False
    onnx_refusal = "onnxruntime's transformer optimizer fails on its graph"

    def __init__(self, cfg: ModernBertConfig):
        super().__init__(cfg, ModernBertEmbeddings(cfg))
        self.final_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.norm_bias)
        head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.rotary = {"full_attention": Rotary(head_dim, cfg.global_rope_theta),
                       "sliding_attention": Rotary(head_dim, cfg.local_rope_theta)}

    def make_layer(self, cfg: ModernBertConfig, index: int) -> nn.Module:
        return ModernBertLayer(cfg, index)

    def forward(self, token_ids, attention_mask, segment_ids=None, first_token_only=False):
        """As Encoder.forward (segment_ids are ignored: no token types). first_token_only is exact here too:
        position 0's query still sees the keys its layer's mask allows."""
        T = token_ids.shape[1]
        key_mask = attention_mask[:, None, None, :]
        # A padded query far from the text sees no real key in a local layer. A softmax over nothing is NaN
        # (SDPA's CPU kernel returns zeros instead, other kernels need not), and the next layer's values
        # would carry it into every real token (0 x NaN): each position may always see itself. Real
        # queries see themselves anyway, so their outputs are unchanged.
        window = local_window(T, self.config.local_attention // 2, token_ids.device)
        masks = {"full_attention": key_mask,
                 "sliding_attention": (key_mask & window) | torch.eye(T, dtype=torch.bool, device=token_ids.device)}
        angles = {kind: rotary(T, token_ids.device) for kind, rotary in self.rotary.items()}
        x = self.embeddings(token_ids, segment_ids, attention_mask)
        for depth, layer in enumerate(self.layers, start=1):
            x = layer(x, masks[layer.attention_type], *angles[layer.attention_type],
                      first_token_only and depth == len(self.layers))
        return self.final_norm(x), None


# ModernBertForSequenceClassification's head: pooling (config.json's classifier_pooling), dense, activation,
# LayerNorm, dropout, classifier
HF_HEAD_RULES = [(r"pre_head\.", "head.dense."), (r"pre_norm\.", "head.norm."), (r"head\.", "classifier.")]
