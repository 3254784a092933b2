"""AdamW with decay/no-decay groups, optional layer-wise learning-rate decay, and the cosine-with-warmup
learning-rate schedule."""
import math

import torch

from training.row_adamw import RowSparseAdamW


def parameter_depth(name: str, num_layers: int) -> int:
    """0 for the embeddings, k + 1 for encoder layer k, num_layers + 1 for the pooler and the head."""
    parts = name.split(".")
    if "embeddings" in parts:
        return 0
    if "layers" in parts:
        return int(parts[parts.index("layers") + 1]) + 1
    return num_layers + 1


def depth_name(depth: int, num_layers: int) -> str:
    return "embeddings" if depth == 0 else "head" if depth == num_layers + 1 else f"layer_{depth - 1:02d}"


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.999),
                    eps: float = 1e-8, implementation: str = "foreach", layer_decay: float = 1.0,
                    num_layers: int | None = None) -> torch.optim.AdamW:
    """Matrices (and embedding tables) decay; biases and LayerNorm weights, all 1-D, do not.

    layer_decay < 1 (with num_layers, the encoder's depth): the head and pooler train at `lr`, encoder
    layer k at lr x decay^(num_layers - k), the embeddings at lr x decay^(num_layers + 1): lower layers,
    which hold the most general features, move least. Each group's name is in group["name"]."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    by_depth = {}
    for name, p in named:
        depth = parameter_depth(name, num_layers) if layer_decay != 1.0 else 0
        by_depth.setdefault(depth, []).append(p)
    groups = []
    for depth, params in sorted(by_depth.items()):
        scale = layer_decay ** (num_layers + 1 - depth) if layer_decay != 1.0 else 1.0
        name = depth_name(depth, num_layers) if layer_decay != 1.0 else "all"
        groups += [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay,
                    "lr": lr * scale, "name": name},
                   {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "lr": lr * scale,
                    "name": name}]
    groups = [g for g in groups if g["params"]]
    kwargs = {"fused": True} if implementation == "fused" else {"foreach": implementation == "foreach"}
    return RowSparseAdamW(groups, lr=lr, betas=tuple(betas), eps=eps, **kwargs)


def clip_gradients(optimizer: torch.optim.Optimizer, params, max_norm: float, in_optimizer: bool) -> torch.Tensor:
    """clip_grad_norm_: returns the gradients' total norm, and they are scaled by max_norm / norm when that
    is below 1. in_optimizer (trainer.clip_in_optimizer) with fused AdamW: the scale is handed to the
    optimizer's kernel, which divides each gradient by `grad_scale` as it reads it (the hook AMP's
    GradScaler uses), instead of a pass of its own over every gradient before the step."""
    params = [p for p in params if p.grad is not None]
    for p in params:
        if p.grad.is_sparse:  # optim.sparse_embedding: a row used twice has two entries until coalesced
            p.grad = p.grad.coalesce()
    norm = torch.nn.utils.get_total_norm([p.grad.values() if p.grad.is_sparse else p.grad for p in params])
    divisor = ((norm + 1e-6) / max_norm).clamp(min=1.0)  # clip_grad_norm_'s 1e-6, as a divisor
    if in_optimizer and optimizer.defaults.get("fused"):
        optimizer.grad_scale = divisor
    else:
        torch._foreach_div_([p.grad for p in params if not p.grad.is_sparse], divisor)
        for p in params:
            if p.grad.is_sparse:
                p.grad.values().div_(divisor)  # a view of the coalesced gradient's values
    return norm


def lr_groups(optimizer: torch.optim.Optimizer) -> dict[str, int] | None:
    """TensorBoard name -> index of one optimizer group per depth, when layer-wise decay made several."""
    first = {}
    for index, group in enumerate(optimizer.param_groups):
        first.setdefault(group.get("name", "all"), index)
    return None if list(first) == ["all"] else first


def cosine_with_warmup(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
