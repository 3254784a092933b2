"""Objects built from the Hydra config, shared by train.py and the benchmarks, plus one training step."""
import contextlib

import torch
import torch.nn.functional as F

from torch.utils.data import DataLoader

from data.dataset import LengthGroupedBatchSampler, TrainingSteps
from engine.distributed import check_batch_split
from engine.optim import build_optimizer, cosine_with_warmup
from model.bert import BertEncoder
from model.classifier import BERTClassifier
from model.dropout import Dropout


def build_model(cfg, num_labels: int, device) -> BERTClassifier:
    encoder = BertEncoder.from_pretrained(cfg.model.path)
    model = BERTClassifier(encoder, num_labels, cfg.model.dropout, cfg.model.pooling).to(device)
    for module in model.modules():
        if isinstance(module, Dropout):
            module.fast = cfg.model.fast_dropout
    if cfg.model.freeze_embeddings:
        model.encoder.embeddings.requires_grad_(False)
    if cfg.model.pooling != "pooler":  # cls/mean never use it: no gradient to wait for (DDP) or apply
        model.encoder.pooler.requires_grad_(False)
    return model


def build_train_loader(cfg, train_set, ddp, device) -> DataLoader:
    """Per optimizer step: this process's share of a global batch of trainer.batch_size examples of
    similar length, as trainer.grad_accum_steps micro-batches, each padded to its own longest."""
    tcfg = cfg.trainer
    check_batch_split(ddp, tcfg.batch_size, tcfg.grad_accum_steps)
    global_batches = LengthGroupedBatchSampler(train_set.valid_length, tcfg.batch_size, shuffle=True,
                                               seed=cfg.seed, group_by_length=tcfg.group_by_length)
    steps = TrainingSteps(global_batches, ddp.world_size, ddp.rank, tcfg.grad_accum_steps)
    # Its own generator: iterating a DataLoader otherwise draws a seed from the global RNG each epoch,
    # which would shift every dropout mask after a mid-epoch resume.
    return DataLoader(train_set, batch_sampler=steps, collate_fn=train_set.collate_step,
                      generator=torch.Generator(), num_workers=tcfg.num_workers,
                      pin_memory=device.type == "cuda")


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


def train_step(forward, micro_batches, optimizer, scheduler, trainable, max_grad_norm, mixed_precision,
               on_nonfinite="stop", no_sync=contextlib.nullcontext):
    """One optimizer step over this process's share of the global batch, given as micro-batches:
    forward under autocast, fp32 loss, backward per micro-batch, then clip, step, schedule.

    Each micro-batch's loss is its summed cross-entropy over the examples of the whole share, so the
    accumulated gradient is the gradient of the share's mean loss, whatever the micro-batch sizes.
    Under DDP, `no_sync` defers the gradient all-reduce to the last micro-batch, whose backward
    averages over processes (equal shares: the mean over the global batch).

    Returns device tensors (mean loss of the share, grad norm) so the caller decides when to pay for a
    host sync. A non-finite gradient norm (NaN/inf loss or overflow) never reaches the weights: the
    step is skipped (`on_nonfinite=skip`, the schedule still advances) or NonFiniteGradient is
    raised. Every process sees the same all-reduced norm, so all take the same branch. Checking it
    costs one host sync per step: free on CPU, a short stall on CUDA."""
    examples = sum(len(batch.labels) for batch in micro_batches)
    loss = 0.0
    for i, batch in enumerate(micro_batches):
        with no_sync() if i < len(micro_batches) - 1 else contextlib.nullcontext():
            with mixed_precision:
                logits = forward(batch.token_ids, batch.valid_length, batch.segment_ids)
            micro_loss = F.cross_entropy(logits.float(), batch.labels, reduction="sum") / examples
            micro_loss.backward()
        loss = loss + micro_loss.detach()
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
    finite = bool(torch.isfinite(grad_norm))
    if finite:
        optimizer.step()
    elif on_nonfinite == "stop":
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteGradient(f"loss {loss.item():.4g}, gradient norm {grad_norm.item():.4g}")
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss, grad_norm, finite
