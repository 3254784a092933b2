"""Objects built from the Hydra config, shared by train.py and the benchmarks, plus one training step."""
import torch
import torch.nn.functional as F

from engine.optim import build_optimizer, cosine_with_warmup
from model.bert import BertEncoder
from model.classifier import BERTClassifier


def build_model(cfg, num_labels: int, device) -> BERTClassifier:
    encoder = BertEncoder.from_pretrained(cfg.model.path)
    model = BERTClassifier(encoder, num_labels, cfg.model.dropout, cfg.model.pooling).to(device)
    if cfg.model.freeze_embeddings:
        model.encoder.embeddings.requires_grad_(False)
    return model


def build_optimization(cfg, model, total_steps: int):
    """AdamW over the trainable parameters and a per-step cosine-with-warmup schedule."""
    optimizer = build_optimizer(model, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.betas,
                                cfg.optim.eps, cfg.optim.implementation)
    warmup_steps = round(cfg.scheduler.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_with_warmup(step, warmup_steps, total_steps, cfg.scheduler.min_lr_ratio))
    return optimizer, scheduler, warmup_steps


class NonFiniteGradient(Exception):
    pass


def train_step(forward, batch, optimizer, scheduler, trainable, max_grad_norm, mixed_precision,
               on_nonfinite="stop"):
    """Forward under autocast, fp32 loss, backward, clip, step, schedule. Returns device tensors
    (loss, grad norm) so the caller decides when to pay for a host sync.

    A non-finite gradient norm (NaN/inf loss or overflow) never reaches the weights: the step is
    skipped (`on_nonfinite=skip`, the schedule still advances) or NonFiniteGradient is raised.
    Checking it costs one host sync per step: free on CPU, a short stall on CUDA."""
    with mixed_precision:
        logits = forward(batch.token_ids, batch.valid_length, batch.segment_ids)
    loss = F.cross_entropy(logits.float(), batch.labels)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
    finite = bool(torch.isfinite(grad_norm))
    if finite:
        optimizer.step()
    elif on_nonfinite == "stop":
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteGradient(f"loss {loss.item():.4g}, gradient norm {grad_norm.item():.4g}")
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach(), grad_norm, finite
