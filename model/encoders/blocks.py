"""The transformer pieces every encoder family shares: post-LayerNorm self-attention blocks, the
encoder that stacks them over a family's embeddings, and the configuration keys they read.

A family module (model/encoders/bert.py, roberta.py, electra.py, distilbert.py) adds only what is its own:
its embeddings, whether it has a pooler, its config.json spelling and its Hugging Face key names.
"""
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import UserError
from model.dropout import Dropout
from model.encoders.hf_weights import load_hf_encoder_weights, read_weights

ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


@dataclass
class EncoderConfig:
    """The keys the shared blocks read, spelled as BERT's config.json spells them."""
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    model_type: str = "bert"  # config.json's, which picks the family (model/encoders/families.py)

    MODEL_TYPES = ("bert",)  # the model_type values this config class reads
    # config.json keys whose non-default values change the maths in ways these blocks do not compute
    REFUSED = {"position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False}

    @classmethod
    def from_dict(cls, d: dict, source="config.json"):
        for key, supported in cls.REFUSED.items():
            if d.get(key, supported) != supported:
                raise UserError(f"{source}: {key}={d[key]!r} is not supported (only {supported!r})")
        if d.get("hidden_act", "gelu") not in ACTIVATIONS:
            raise UserError(f"{source}: hidden_act={d['hidden_act']!r} is not supported ({', '.join(ACTIVATIONS)})")
        # HF configs carry many unrelated keys (architectures, id2label, ...): keep only ours.
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json(cls, path: Path):
        return cls.from_dict(read_config_json(path), source=path)

    def to_dict(self) -> dict:
        """config.json as transformers writes it for this family (model_type included)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def read_config_json(path: Path) -> dict:
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: encoder config not found") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(d, dict):
        raise UserError(f"{path}: not a config (a JSON object was expected)")
    return d


class SelfAttention(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.n_head = cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.probs_dropout = Dropout(cfg.attention_probs_dropout_prob)

    def forward(self, x, key_mask, queries=None):
        """`queries`: the positions whose outputs are wanted, (B, Tq, C) (default: all of x); every
        position of x is still a key and a value."""
        queries = x if queries is None else queries
        B, T, C = x.shape
        heads = lambda t: t.view(B, t.shape[1], self.n_head, C // self.n_head).transpose(1, 2)  # noqa: E731
        q, k, v = heads(self.query(queries)), heads(self.key(x)), heads(self.value(x))  # (B, heads, T, head_dim)
        y = attend(q, k, v, key_mask, self.probs_dropout)
        return self.out(y.transpose(1, 2).reshape(B, queries.shape[1], C))


def attend(q, k, v, mask, probs_dropout: Dropout, scale: float | None = None):
    """softmax(q k^T * scale + mask) v, dropout on the probabilities. `mask`: bool (True: may attend) or an
    additive float bias (-inf where not); `scale` defaults to 1 / sqrt(head_dim)."""
    # A float bias on the CPU (DeBERTa's position terms): CPU SDPA was never faster than these three operations
    # on a DeBERTa-v3-base config, 1.1-1.4x their forward time (benchmarks/deberta_attention.py, two runs).
    if probs_dropout.uses_fast_mask(q) or (mask.dtype != torch.bool and q.device.type == "cpu"):
        # What SDPA's math kernel computes, which is the one CPU SDPA runs when dropout is on,
        # but with the cheaper mask (model/dropout.py).
        scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5 if scale is None else scale)
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        return probs_dropout(scores.softmax(-1)) @ v
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale,
                                          dropout_p=probs_dropout.p if probs_dropout.training else 0.0)


class Layer(nn.Module):
    """Post-LayerNorm transformer block, as in the original BERT. `attention_dropout_out`: dropout on the
    attention output before its residual sum (BERT, RoBERTa, ELECTRA); DistilBERT has none there."""

    def __init__(self, cfg: EncoderConfig, attention_dropout_out: bool = True, attention: nn.Module | None = None):
        super().__init__()
        self.attn = attention or SelfAttention(cfg)
        self.attn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.hidden_act, self.act = cfg.hidden_act, ACTIVATIONS[cfg.hidden_act]
        self.dropout = Dropout(cfg.hidden_dropout_prob)
        self.attention_dropout_out = attention_dropout_out

    def forward(self, x, key_mask, first_token_only=False, **position_inputs):
        """first_token_only: outputs for position 0 alone, (B, 1, C); it still attends to every position.
        position_inputs: what a family's attention reads besides the mask (DeBERTa's relative positions)."""
        queries = x[:, :1] if first_token_only else x
        attended = self.attn(x, key_mask, queries, **position_inputs)
        if self.attention_dropout_out:
            attended = self.dropout(attended)
        x = self.attn_norm(queries + attended)
        return self.ffn_norm(x + self.dropout(self.ffn_out(self.act(self.ffn_in(x)))))


def rename(key: str, rules: list) -> str | None:
    """`key` renamed by the first (pattern, replacement) rule whose pattern starts it; None if none does.
    A replacement is a template (`\\1`) or a function of the match."""
    for pattern, replacement in rules:
        m = re.match(pattern, key)
        if m:
            return (replacement(m) if callable(replacement) else m.expand(replacement)) + key[m.end():]
    return None


class Encoder(nn.Module):
    """A family's embeddings, then post-LayerNorm layers, then (where the family has one) the pooler
    tanh(dense([CLS])). Subclasses set `embeddings` and `has_pooler`, and name their config class and
    Hugging Face key names (`hf_key_rules`, written without `hf_prefix`, the prefix of task checkpoints)."""

    display_name = "BERT"
    config_class = EncoderConfig
    has_pooler = True
    attention_dropout_out = True
    hf_prefix = ""
    hf_key_rules: list = []
    onnx_exportable = True  # model/export.py's format=onnx and predict.py's runtime=onnx
    onnx_refusal = ""  # why not, where onnx_exportable is False
    hf_unread_keys = None  # regex: the family's checkpoint keys that are not the encoder's and go unread

    @classmethod
    def hf_name(cls, key: str, with_prefix: bool = True) -> str:
        """Our encoder key -> the family's Hugging Face key."""
        name = rename(key, cls.hf_key_rules)
        if name is None:
            raise KeyError(key)
        return cls.hf_prefix + name if with_prefix else name

    @classmethod
    def from_pretrained(cls, directory) -> "Encoder":
        """This family's pretrained encoder from a Hugging Face directory (base model or *For* task
        checkpoint). model/encoders/families.py picks the family from config.json first."""
        directory = Path(directory)
        config = read_config_json(directory / "config.json")
        model_type = config.get("model_type", "bert")
        if model_type not in cls.config_class.MODEL_TYPES:
            raise UserError(f"{directory / 'config.json'}: model_type={model_type!r}, not one of "
                            f"{', '.join(cls.config_class.MODEL_TYPES)} ({cls.__name__})")
        encoder = cls(cls.config_class.from_dict(config, source=directory / "config.json"))
        load_hf_encoder_weights(encoder, read_weights(directory), directory)
        return encoder

    def __init__(self, cfg: EncoderConfig, embeddings: nn.Module):
        super().__init__()
        self.config = cfg
        self.embeddings = embeddings
        self.layers = nn.ModuleList(self.make_layer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.pooler = nn.Linear(cfg.hidden_size, cfg.hidden_size) if self.has_pooler else None
        self.apply(self._init_weights)

    def make_layer(self, cfg: EncoderConfig, index: int) -> nn.Module:
        """Layer `index` (from 0); a family whose layers are not post-LayerNorm BERT layers builds its own."""
        return Layer(cfg, self.attention_dropout_out)

    @staticmethod
    def _init_weights(module):
        # BERT's initialisation; only matters for random models (tests, training from scratch).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, token_ids, attention_mask, segment_ids=None, first_token_only=False):
        """Returns (hidden states (B, T, C), pooled output (B, C), or None without a pooler).

        attention_mask: bool (B, T), True for real tokens. Padded positions still get hidden
        states (as in Hugging Face), they just cannot be attended to.
        first_token_only: the last layer computes position 0 ([CLS]) alone and hidden states are
        (B, 1, C). The pooler and cls pooling read nothing else, and the last layer's queries,
        attention output and FFN at the other positions are 5/6 of its matmuls: the same outputs
        and gradients for 1/7 less work in a 6-layer encoder.
        """
        if segment_ids is None:
            segment_ids = torch.zeros_like(token_ids)
        key_mask = attention_mask[:, None, None, :]  # broadcast over heads and query positions
        x = self.embeddings(token_ids, segment_ids, attention_mask)
        for depth, layer in enumerate(self.layers, start=1):
            x = layer(x, key_mask, first_token_only and depth == len(self.layers))
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None
        return x, pooled

    def keep_vocabulary(self, rows: list[int]):
        """Keeps only these word-embedding rows, renumbered 0..len-1 in this order (data/vocab_trim.py)."""
        old = self.embeddings.word
        pad = rows.index(self.config.pad_token_id)
        self.config.vocab_size, self.config.pad_token_id = len(rows), pad
        self.embeddings.word = nn.Embedding(len(rows), old.embedding_dim, padding_idx=pad,
                                            device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            self.embeddings.word.weight.copy_(old.weight[torch.tensor(rows, device=old.weight.device)])
        self.embeddings.word.requires_grad_(old.weight.requires_grad)
        self.embeddings.vocabulary_renumbered(pad)
