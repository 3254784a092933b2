"""Objects built from the Hydra config, shared by train.py and the benchmarks."""
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from data.build import build_datasets, read_splits
from data.digest import split_digest, texts_digest
from data.dataset import ClassificationDataset, LengthGroupedBatchSampler, TrainingSteps
from data.tokenizer import Tokenizer
from data.transform import BERTSentenceTransform, framing_of
from data.vocab_trim import training_tokenizer
from evaluation.analysis import display_texts
from inference.batches import eval_loader
from training.optim import build_optimizer, cosine_with_warmup
from model.classifier import BERTClassifier
from model.dropout import use_fast_dropout
from model.encoders.families import load_encoder, model_type_of_directory
from model.hf_classifier import start_from_hf_head


@dataclass
class TrainingData:
    tokenizer: Tokenizer
    pair: bool  # sentence pairs (data.text_b_column)
    label_names: list[str]  # in id order
    datasets: dict[str, ClassificationDataset]  # train, validation, test
    train_loader: DataLoader
    val_loader: DataLoader
    val_texts: list[str] | None  # for the highest-loss tables (datasets keep token ids only)
    kept_rows: list[int] | None  # model.trim_vocab: the encoder's embedding rows the tokenizer still uses
    texts_digests: dict[str, str]  # per split, the texts as read (data/digest.py): kept in prediction files
    split_digests: dict[str, str]  # per split, texts and labels: what a resume checks it trains on
    excluded: int | None  # data.exclude: the training rows it dropped (None: not set)

    @property
    def multi_label(self) -> bool:
        return self.datasets["train"].multi_label


def build_data(cfg, ddp, device) -> TrainingData:
    """Every split tokenized once, then batched by similar length and padded per batch; what reading
    found (repairs, truncations, duplicates, overlap) is printed per split."""
    tcfg = cfg.trainer
    splits = read_splits(cfg.data)  # read once: for trimming the vocabulary, the datasets and the analysis
    tokenizer, kept_rows = training_tokenizer(cfg.model, cfg.data, splits["train"])
    transform = BERTSentenceTransform(tokenizer, cfg.data.max_len, pair=bool(cfg.data.text_b_column),
                                      text_prefix=cfg.data.text_prefix,
                                      framing=framing_of(model_type_of_directory(cfg.model.path), tokenizer))
    datasets, label_names, data_stats = build_datasets(cfg.data, transform, splits)
    for split, stats in data_stats.items():
        print(f"{split:>10}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    val_loader = eval_loader(datasets["validation"], tcfg.eval_batch_size, **loader_options(tcfg, device))
    val_texts = display_texts(splits["validation"]) if tcfg.analysis and ddp.is_main else None
    texts = {split: texts_digest(examples.texts, examples.texts_b) for split, examples in splits.items()}
    labelled = {split: split_digest(texts[split], datasets[split].labels, label_names) for split in splits}
    return TrainingData(tokenizer, transform.pair, label_names, datasets,
                        build_train_loader(cfg, datasets["train"], ddp, device), val_loader, val_texts, kept_rows,
                        texts, labelled, splits["train"].stats.get("excluded"))


def loader_options(tcfg, device) -> dict:
    return {"num_workers": tcfg.num_workers, "pin_memory": device.type == "cuda"}


def planned_steps(tcfg, steps_per_epoch: int) -> int:
    """Optimizer steps of the run: max_epochs of them, capped by max_steps; the schedule spans them."""
    total = tcfg.max_epochs * steps_per_epoch
    return min(total, tcfg.max_steps) if tcfg.max_steps else total


def build_model(cfg, num_labels: int, device, kept_rows: list[int] | None = None,
                label_names: list[str] | None = None) -> BERTClassifier:
    """The pretrained encoder (any family, model/encoders/families.py) under a fresh head; with model.head=family
    from a fine-tuned Hugging Face classifier of the same labels (`label_names`), under that classifier's head."""
    encoder = load_encoder(cfg.model.path)
    if kept_rows is not None:  # model.trim_vocab (data/vocab_trim.py)
        encoder.keep_vocabulary(kept_rows)
    model = BERTClassifier(encoder, num_labels, cfg.model.dropout, cfg.model.pooling, cfg.model.head)
    if cfg.model.head == "family" and label_names is not None:
        kept = start_from_hf_head(model, Path(cfg.model.path), label_names)
        if kept:
            print(kept)
    model = model.to(device)
    use_fast_dropout(model, cfg.model.fast_dropout)
    model.first_token_only = cfg.model.first_token_only
    if cfg.model.freeze_embeddings:
        model.encoder.embeddings.requires_grad_(False)
    if model.pooling != "pooler" and model.encoder.pooler is not None:
        model.encoder.pooler.requires_grad_(False)  # cls/mean never use it: no gradient to wait for (DDP) or apply
    return model


def build_train_loader(cfg, train_set, ddp, device) -> DataLoader:
    """Per optimizer step: this process's share of a global batch of trainer.batch_size examples of
    similar length, as trainer.grad_accum_steps micro-batches, each padded to its own longest."""
    tcfg = cfg.trainer
    global_batches = LengthGroupedBatchSampler(train_set.valid_length, tcfg.batch_size, shuffle=True,
                                               seed=cfg.seed, group_by_length=tcfg.group_by_length)
    steps = TrainingSteps(global_batches, ddp.world_size, ddp.rank, tcfg.grad_accum_steps)
    # Its own generator: iterating a DataLoader otherwise draws a seed from the global RNG each epoch,
    # which would shift every dropout mask after a mid-epoch resume.
    return DataLoader(train_set, batch_sampler=steps, collate_fn=train_set.collate_step,
                      generator=torch.Generator(), num_workers=tcfg.num_workers,
                      pin_memory=device.type == "cuda")


def build_optimization(cfg, model, total_steps: int, processes: int = 1):
    """AdamW over the trainable parameters (layer-wise lr decay: optim.layer_decay) and a per-step
    cosine-with-warmup schedule, which scales every group's own peak rate. optim.sparse_embedding makes
    the word embedding's gradient sparse, in one process only: DDP's gradient buckets are dense."""
    model.encoder.embeddings.word.sparse = cfg.optim.sparse_embedding and processes == 1
    optimizer = build_optimizer(model, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.betas,
                                cfg.optim.eps, cfg.optim.implementation, cfg.optim.layer_decay,
                                model.encoder.config.num_hidden_layers)
    warmup_steps = round(cfg.scheduler.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_with_warmup(step, warmup_steps, total_steps, cfg.scheduler.min_lr_ratio))
    return optimizer, scheduler, warmup_steps
