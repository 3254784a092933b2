"""A trained classifier rearranged for CPU inference: Linear weights laid out once for oneDNN.

nn.Linear on CPU hands its row-major weight to the GEMM library on every call. At the sizes
predict.py sees (one sentence, ~17 tokens) those calls run far below the machine's peak. Here each
weight is reordered once into oneDNN's blocked layout (the packing torch.compile does on CPU) and
oneDNN is called directly; each attention layer becomes a PackedSelfAttention whose query, key and
value projections are one product, and the feed-forward activation runs inside the first product. In fp32, results differ from
nn.Linear's only in summation order (probabilities within ~1e-5); figures in BENCHMARKS.md.

Only for models that are done training: a packed weight is an opaque oneDNN tensor without
autograd, and it is not part of the state dict. Saving a packed model raises rather than writing a
checkpoint without its Linear weights.
"""
import torch
import torch.nn.functional as F
from torch import nn

from model.encoders.blocks import Layer, SelfAttention

PACKED_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# hidden_act -> oneDNN post-op (attribute, algorithm)
FUSED_ACTIVATIONS = {"gelu": ("gelu", "none"), "gelu_new": ("gelu", "tanh"),
                     "gelu_pytorch_tanh": ("gelu", "tanh"), "relu": ("relu", "")}


def can_pack(dtype: torch.dtype) -> bool:
    """oneDNN is built in, this torch has the packing ops, and (for bf16) the CPU has bf16 instructions."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        torch.ops.mkldnn._linear_pointwise, torch.ops.mkldnn._reorder_linear_weight
    except (AttributeError, RuntimeError):  # a torch build without them
        return False
    return dtype == torch.float32 or torch.ops.mkldnn._is_mkldnn_bf16_supported()


class PackedLinear(nn.Module):
    """activation(x W^T + b) in `dtype` for one or more Linear layers side by side (their outputs
    concatenated). Inputs are cast to `dtype`, so under bf16 the output is bf16, as with autocast."""

    def __init__(self, linears: list[nn.Linear], dtype: torch.dtype, activation: str | None = None):
        super().__init__()
        self.in_features, self.out_features = linears[0].in_features, sum(lin.out_features for lin in linears)
        self.dtype, self.activation = dtype, activation
        self.post_op = FUSED_ACTIVATIONS[activation] if activation else ("none", "")
        weight = torch.cat([lin.weight.detach() for lin in linears]).to(dtype)
        # None: no batch-size hint, so the layout serves any number of rows.
        self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(weight, None)
        biases = [lin.bias for lin in linears]
        self.bias = None if any(b is None for b in biases) else torch.cat([b.detach() for b in biases]).to(dtype)

    def forward(self, x):
        attribute, algorithm = self.post_op
        return torch.ops.mkldnn._linear_pointwise(x.to(self.dtype), self.packed_weight, self.bias,
                                                  attribute, [], algorithm)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        raise RuntimeError(f"{prefix or 'model'}: Linear weights are packed for inference; save the unpacked model")

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.dtype}, "
                f"activation={self.activation}")


class PackedSelfAttention(nn.Module):
    """SelfAttention of a model done training: query, key and value as one packed product, no dropout."""

    def __init__(self, attention: SelfAttention, dtype: torch.dtype):
        super().__init__()
        self.n_head = attention.n_head
        self.qkv = PackedLinear([attention.query, attention.key, attention.value], dtype)
        self.out = PackedLinear([attention.out], dtype)

    def forward(self, x, key_mask, queries=None):
        B, T, C = x.shape
        # (B, T, 3C) -> three (B, heads, T, head_dim)
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        if queries is not None:  # the last layer under first_token_only: queries are x[:, :1]
            q = q[:, :, :queries.shape[1]]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        return self.out(y.transpose(1, 2).reshape(B, q.shape[2], C))


def pack_linears(model: nn.Module, precision: str) -> bool:
    """Packs every nn.Linear of a CPU model, in place, fusing where the BERT layers allow; what is
    packed already stays as it is. Returns False, leaving the model as it was, where this torch or
    CPU cannot pack."""
    dtype = PACKED_DTYPES[precision]
    if not can_pack(dtype):
        return False
    for layer in [m for m in model.modules() if isinstance(m, Layer)]:
        if isinstance(layer.attn, SelfAttention):
            layer.attn = PackedSelfAttention(layer.attn, dtype)
        if isinstance(layer.ffn_in, nn.Linear) and layer.hidden_act in FUSED_ACTIVATIONS:
            layer.ffn_in = PackedLinear([layer.ffn_in], dtype, activation=layer.hidden_act)
            layer.act = nn.Identity()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, PackedLinear([child], dtype))
    return True
