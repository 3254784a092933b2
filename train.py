"""Fine-tune a BERT-family encoder for text classification.

    python train.py                                  # all-MiniLM-L6-v2 on the embedded tweets
    python train.py data=emotion optim.lr=5e-5 trainer.max_epochs=2
    python train.py -m optim.lr=1e-4,5e-5 model.dropout=0.1,0.5   # Hydra multirun sweep

The run directory (printed at start) receives metrics.json, checkpoints/best/ and TensorBoard events.
"""
import json
import math
import time
from itertools import islice
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

import engine.config  # noqa: F401  (registers the ${package_file:} and ${project_root:} resolvers)
from data.build import build_datasets
from data.dataset import LengthGroupedBatchSampler
from data.tokenizer import load_tokenizer
from data.transform import BERTSentenceTransform
from engine.cli import check_overrides
from engine.build import build_model, build_optimization, train_step
from engine.errors import UserError, exit_on_user_error
from engine.evaluation import evaluate
from engine.inference import eval_loader
from engine.runtime import autocast, pick_device, seed_everything, configure_cpu
from model.checkpoint import ClassifierInfo, load_checkpoint, save_checkpoint

MONITORS = {"accuracy": +1, "macro_f1": +1, "loss": -1}  # +1: higher is better


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    tcfg = cfg.trainer
    if tcfg.monitor not in MONITORS:
        raise UserError(f"trainer.monitor={tcfg.monitor!r} is not one of {', '.join(MONITORS)}")
    configure_cpu(tcfg.threads)
    seed_everything(cfg.seed)
    device = pick_device(tcfg.device)
    mixed_precision = autocast(device, tcfg.precision)
    print(f"run directory: {run_dir}")

    # ---- data: tokenized once, batched by similar length, padded per batch
    tokenizer = load_tokenizer(cfg.model.path)
    transform = BERTSentenceTransform(tokenizer, cfg.data.max_len, pair=bool(cfg.data.text_b_column))
    datasets, label_names, data_stats = build_datasets(cfg.data, transform)
    for split, stats in data_stats.items():
        print(f"{split:>10}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    train_set = datasets["train"]
    train_sampler = LengthGroupedBatchSampler(train_set.valid_length, tcfg.batch_size, shuffle=True,
                                              seed=cfg.seed, group_by_length=tcfg.group_by_length)
    loader_kwargs = {"num_workers": tcfg.num_workers, "pin_memory": device.type == "cuda"}
    train_loader = DataLoader(train_set, batch_sampler=train_sampler, collate_fn=train_set.collate,
                              **loader_kwargs)
    val_loader = eval_loader(datasets["validation"], tcfg.eval_batch_size, **loader_kwargs)

    # ---- model, optimizer, schedule
    model = build_model(cfg, len(label_names), device)
    steps_per_epoch = len(train_loader)
    total_steps = tcfg.max_epochs * steps_per_epoch
    if tcfg.max_steps:
        total_steps = min(total_steps, tcfg.max_steps)
    optimizer, scheduler, warmup_steps = build_optimization(cfg, model, total_steps)
    forward = torch.compile(model) if tcfg.compile else model
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"{sum(p.numel() for p in trainable) / 1e6:.1f}M trainable parameters, {total_steps} steps "
          f"({steps_per_epoch}/epoch), warmup {warmup_steps}, {tcfg.precision} on {device}")

    # ---- the loop: one optimizer step per batch; host syncs only every log_every steps
    writer = SummaryWriter(str(run_dir / "tensorboard"))
    best_dir = run_dir / "checkpoints" / "best"
    info = ClassifierInfo(label_names, cfg.model.pooling, cfg.data.max_len, transform.pair, cfg.model.dropout)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    sign = MONITORS[tcfg.monitor]
    best, history, step, start, validation_seconds = None, [], 0, time.perf_counter(), 0.0
    for epoch in range(math.ceil(total_steps / steps_per_epoch)):
        train_sampler.set_epoch(epoch)
        model.train()
        running_loss, running_count = torch.zeros((), device=device), 0
        epoch_steps = min(steps_per_epoch, total_steps - step)  # the last epoch may be cut by max_steps
        progress = tqdm(islice(train_loader, epoch_steps), desc=f"epoch {epoch + 1}", total=epoch_steps,
                        dynamic_ncols=True)
        for batch in progress:
            loss, grad_norm = train_step(forward, batch.to(device, non_blocking=True), optimizer, scheduler,
                                         trainable, tcfg.max_grad_norm, mixed_precision)
            step += 1
            running_loss += loss
            running_count += 1
            if step % tcfg.log_every == 0:
                mean_loss = (running_loss / running_count).item()
                running_loss.zero_()
                running_count = 0
                writer.add_scalar("train/loss", mean_loss, step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                writer.add_scalar("train/grad_norm", grad_norm.item(), step)
                progress.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        progress.close()

        validation_start = time.perf_counter()
        val = evaluate(model, val_loader, device, mixed_precision, label_names)
        validation_seconds += time.perf_counter() - validation_start
        elapsed = time.perf_counter() - start
        for name in ("loss", "accuracy", "macro_f1"):
            writer.add_scalar(f"val/{name}", val[name], step)
        history.append({"epoch": epoch + 1, "step": step, "train_seconds": round(elapsed, 1),
                        **{k: val[k] for k in ("loss", "accuracy", "macro_f1")}})
        improved = best is None or sign * val[tcfg.monitor] > sign * best[tcfg.monitor]
        print(f"epoch {epoch + 1}: val loss {val['loss']:.4f} accuracy {val['accuracy']:.4f} "
              f"macro-F1 {val['macro_f1']:.4f}" + ("  (best so far, saved)" if improved else ""))
        if improved:
            best = {**history[-1]}
            save_checkpoint(best_dir, model, info, tokenizer, config_yaml)
    train_seconds = time.perf_counter() - start

    # ---- test the best checkpoint, exactly as evaluate.py would load it
    best_model = load_checkpoint(best_dir, device).model
    test = evaluate(best_model, eval_loader(datasets["test"], tcfg.eval_batch_size, **loader_kwargs),
                    device, mixed_precision, label_names)
    for name in ("accuracy", "macro_f1"):
        writer.add_scalar(f"test/{name}", test[name], step)
    writer.close()
    metrics = {"best_validation": best, "test": {k: test[k] for k in ("loss", "accuracy", "macro_f1", "weighted_f1")},
               "test_per_class": test["per_class"], "history": history, "labels": label_names,
               "train_seconds": round(train_seconds, 1), "validation_seconds": round(validation_seconds, 1),
               "steps": step,  # samples/s of the optimisation steps alone (validation excluded):
               "train_samples_per_second": round(step * tcfg.batch_size / (train_seconds - validation_seconds), 1)}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    print(f"test (best epoch {best['epoch']}): accuracy {test['accuracy']:.4f} macro-F1 {test['macro_f1']:.4f}; "
          f"trained {train_seconds:.0f}s; wrote {run_dir / 'metrics.json'}")
    return best[tcfg.monitor]


if __name__ == "__main__":
    check_overrides("config")
    main()
