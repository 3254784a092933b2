"""BERT encoder in plain PyTorch that loads Hugging Face-format checkpoints.

Module names are our own (short, readable); `HF_KEY_RULES` maps them to the names found in
Hugging Face `BertModel` state dicts, so loading and exporting are a rename, not a re-implementation.
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


@dataclass
class BertConfig:
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

    @classmethod
    def from_dict(cls, d: dict) -> "BertConfig":
        # HF configs carry many unrelated keys (architectures, id2label, ...): keep only ours.
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json(cls, path: Path) -> "BertConfig":
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: encoder config not found") from None
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise UserError(f"{path}: position_embedding_type={d['position_embedding_type']!r} "
                            "is not supported (only 'absolute')")
        return cls.from_dict(d)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


class Embeddings(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.position = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.hidden_dropout_prob)

    def forward(self, token_ids, segment_ids):
        positions = torch.arange(token_ids.shape[1], device=token_ids.device)
        x = self.word(token_ids) + self.position(positions) + self.token_type(segment_ids)
        return self.dropout(self.norm(x))


class SelfAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
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
        drop = self.probs_dropout
        if drop.uses_fast_mask(x):
            # What SDPA's math kernel computes, which is the one CPU SDPA runs when dropout is on,
            # but with the cheaper mask (model/dropout.py).
            scores = (q @ k.transpose(-2, -1)) * (C // self.n_head) ** -0.5
            probs = scores.masked_fill(~key_mask, float("-inf")).softmax(-1)
            y = drop(probs) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask,
                                               dropout_p=drop.p if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, queries.shape[1], C))


class Layer(nn.Module):
    """Post-LayerNorm transformer block, as in the original BERT."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.attn = SelfAttention(cfg)
        self.attn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.hidden_act, self.act = cfg.hidden_act, ACTIVATIONS[cfg.hidden_act]
        self.dropout = Dropout(cfg.hidden_dropout_prob)

    def forward(self, x, key_mask, first_token_only=False):
        """first_token_only: outputs for position 0 alone, (B, 1, C); it still attends to every position."""
        queries = x[:, :1] if first_token_only else x
        x = self.attn_norm(queries + self.dropout(self.attn(x, key_mask, queries)))
        return self.ffn_norm(x + self.dropout(self.ffn_out(self.act(self.ffn_in(x)))))


class BertEncoder(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        if cfg.hidden_act not in ACTIVATIONS:
            raise UserError(f"hidden_act={cfg.hidden_act!r} is not supported ({', '.join(ACTIVATIONS)})")
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))
        self.pooler = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        # BERT's initialisation; only matters for random models (tests, training from scratch).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, token_ids, attention_mask, segment_ids=None, first_token_only=False):
        """Returns (hidden states (B, T, C), pooled output (B, C)).

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
        x = self.embeddings(token_ids, segment_ids)
        for depth, layer in enumerate(self.layers, start=1):
            x = layer(x, key_mask, first_token_only and depth == len(self.layers))
        pooled = torch.tanh(self.pooler(x[:, 0]))
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

    @classmethod
    def from_pretrained(cls, directory) -> "BertEncoder":
        directory = Path(directory)
        encoder = cls(BertConfig.from_json(directory / "config.json"))
        encoder.load_hf_state_dict(read_weights(directory), source=directory)
        return encoder

    def load_hf_state_dict(self, hf_state: dict, source="checkpoint"):
        """Loads a Hugging Face BertModel (or BertFor*) state dict; every mismatch is reported at once."""
        ours = self.state_dict()
        hf_name_to_ours = {ours_to_hf(k, prefix=""): k for k in ours}
        renamed, unexpected = {}, []
        for hf_key, tensor in hf_state.items():
            key = hf_name_to_ours.get(normalize_hf_key(hf_key))
            if key is not None:
                renamed[key] = tensor
            elif not IGNORED_HF_KEYS.search(hf_key):  # task heads and buffers are legitimately ignored
                unexpected.append(hf_key)
        missing = sorted(set(ours) - set(renamed))
        if missing == ["pooler.bias", "pooler.weight"]:
            # Encoders pretrained without a pooler (E5, sentence-transformers exports): it keeps its
            # fresh initialisation, which only pooling=pooler uses.
            print(f"note: {source} has no pretrained pooler; pooling=pooler would start it fresh")
            renamed |= {k: ours[k] for k in missing}
            missing = []
        shapes = [f"{k} {tuple(t.shape)} vs {tuple(ours[k].shape)}"
                  for k, t in renamed.items() if t.shape != ours[k].shape]
        problems = []
        if missing:
            problems.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            problems.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            problems.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:3])})")
        if problems:
            raise UserError(f"{source}: weights do not fit the BERT config: {'; '.join(problems)}")
        self.load_state_dict(renamed)


# (our name pattern, Hugging Face name) pairs; Hugging Face names are written without the "bert." prefix.
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
IGNORED_HF_KEYS = re.compile(r"^(classifier\.|cls\.|qa_outputs\.)|position_ids$")


def normalize_hf_key(hf_key: str) -> str:
    """Strips the `bert.` prefix of BertFor* checkpoints and renames TF-era LayerNorm gamma/beta."""
    key = hf_key.removeprefix("bert.")
    return key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")


def ours_to_hf(key: str, prefix="bert.") -> str:
    for ours, theirs in HF_KEY_RULES:
        m = re.match(ours, key)
        if m:
            return prefix + m.expand(theirs) + key[m.end():]
    raise KeyError(key)


def read_weights(directory: Path) -> dict:
    """Reads model.safetensors, else pytorch_model.bin without unpickling arbitrary objects."""
    safetensors_file, bin_file = directory / "model.safetensors", directory / "pytorch_model.bin"
    if safetensors_file.exists():
        from safetensors.torch import load_file
        try:
            return load_file(str(safetensors_file))
        except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
            raise UserError(f"{safetensors_file}: unreadable safetensors file ({e})") from None
    if bin_file.exists():
        try:
            return torch.load(bin_file, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError for anything but plain tensors, or a corrupt file
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{bin_file}: refused to load (only plain tensors are allowed): {first_line}") from None
    raise UserError(f"{directory}: no model.safetensors or pytorch_model.bin found")


def forward_flops(cfg: BertConfig, length: int) -> int:
    """Matmul FLOPs (2 per multiply-add) of the encoder's forward pass over one sequence of `length`
    real tokens: per token and layer the Q/K/V/out projections, the FFN, and QK^T plus AV against
    `length` keys; then the pooler once, on [CLS]. Embedding lookups are not matmuls. Training costs
    about 3x this (the backward pass does twice the forward's matmuls)."""
    h, i = cfg.hidden_size, cfg.intermediate_size
    per_token_per_layer = 2 * (4 * h * h + 2 * h * i) + 2 * 2 * length * h
    return cfg.num_hidden_layers * per_token_per_layer * length + 2 * h * h
