"""Continued masked-LM pretraining of an encoder on the training split's texts, before fine-tuning.

    python -m training.mlm out=outputs/encoders/e5_korean_mlm                  # multilingual-e5 on data=korean_emotion
    python train.py experiment=korean_emotion_e5 model.path=outputs/encoders/e5_korean_mlm

Task-adaptive pretraining: BERT's masked-LM objective (15% of the real tokens picked; of those 80% become
the mask token, 10% a random piece, 10% stay) on the texts of the training split only, so no validation
or test sentence is seen, unlabelled or not. multilingual-e5 was published without its MLM head, so
a fresh one (dense + GELU + LayerNorm, decoder tied to the word embeddings) is trained alongside;
this may also pull the 4-bit-rounded weights back toward what the texts need. With model.trim_vocab
the vocabulary is trimmed to the training split first (data/vocab_trim.py), which keeps the decoder
small. `out` is a Hugging Face BERT directory (config.json, model.safetensors, tokenizer files)
without the head, which train.py takes as model.path. The log gives the masked-token loss and accuracy
on the validation split's texts (fixed masks) before and after each epoch. It runs on the CPU.
"""
import json
import math
import os
import shutil
import time
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from safetensors.torch import save_file
from torch import nn

import common.config  # noqa: F401  (registers the conf/ resolvers)
from common.cli import check_overrides
from common.errors import UserError, exit_on_user_error
from common.output_paths import check_output_dir, describe_write_error
from data.build import read_splits
from data.dataset import ClassificationDataset, LengthGroupedBatchSampler
from data.transform import BERTSentenceTransform, framing_of
from data.vocab_trim import training_tokenizer
from training.optim import build_optimizer, cosine_with_warmup
from inference.runtime import autocast, configure_cpu, seed_everything
from model.encoders.blocks import Encoder
from model.encoders.families import family_of_encoder, load_encoder

MASK_TOKENS = ("<mask>", "[MASK]")


class MaskedLMHead(nn.Module):
    """BERT's prediction head; the decoder is the encoder's word-embedding table (tied)."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        h = encoder.config.hidden_size
        self.dense, self.norm = nn.Linear(h, h), nn.LayerNorm(h, eps=encoder.config.layer_norm_eps)
        self.word = encoder.embeddings.word
        self.bias = nn.Parameter(torch.zeros(encoder.config.vocab_size))

    def forward(self, hidden):
        return self.norm(F.gelu(self.dense(hidden))) @ self.word.weight.T + self.bias


def mask_tokens(token_ids, valid_length, special_ids, mask_id: int, vocab_size: int, probability: float,
                generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets): targets are -100 except at the picked positions, which hold the original id."""
    real = torch.arange(token_ids.shape[1])[None, :] < valid_length[:, None]
    candidates = real & ~torch.isin(token_ids, torch.tensor(special_ids))
    picked = candidates & (torch.rand(token_ids.shape, generator=generator) < probability)
    if not picked.any() and candidates.any():  # a batch of very short texts: still teach something
        picked.view(-1)[candidates.view(-1).nonzero()[0]] = True
    roll = torch.rand(token_ids.shape, generator=generator)
    inputs = token_ids.clone()
    inputs[picked & (roll < 0.8)] = mask_id
    randomized = picked & (roll >= 0.8) & (roll < 0.9)
    inputs[randomized] = torch.randint(vocab_size, token_ids.shape, generator=generator)[randomized]
    return inputs, torch.where(picked, token_ids, torch.full_like(token_ids, -100))


def mlm_loss(encoder, head, batch, targets, inputs, mixed_precision):
    mask = torch.arange(inputs.shape[1])[None, :] < batch.valid_length[:, None]
    with mixed_precision:
        hidden, _ = encoder(inputs, mask, batch.segment_ids)
        picked = targets != -100
        logits = head(hidden[picked])
    return F.cross_entropy(logits.float(), targets[picked]), logits.argmax(-1) == targets[picked]


def mlm_step(both: nn.ModuleDict, batch, optimizer, scheduler, mask_args, mixed_precision, generator):
    """One optimizer step on freshly masked copies of the batch (new masks every epoch, as BERT's dynamic masking)."""
    inputs, targets = mask_tokens(batch.token_ids, batch.valid_length, *mask_args, generator=generator)
    if not (targets != -100).any():  # nothing but special tokens
        return
    loss, _ = mlm_loss(both["encoder"], both["head"], batch, targets, inputs, mixed_precision)
    if not math.isfinite(loss.item()):
        raise UserError(f"non-finite masked-LM loss ({loss.item()}); lower lr")
    loss.backward()
    torch.nn.utils.clip_grad_norm_(both.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


@torch.no_grad()
def held_out_score(encoder, head, dataset, mask_args, mixed_precision, batch_size=256) -> tuple[float, float]:
    """Masked-token loss and accuracy on `dataset` with the same masks every time (seed 0)."""
    encoder.eval()
    generator = torch.Generator().manual_seed(0)
    losses, hits, count = 0.0, 0, 0
    for start in range(0, len(dataset), batch_size):
        batch = dataset.collate(range(start, min(start + batch_size, len(dataset))))
        inputs, targets = mask_tokens(batch.token_ids, batch.valid_length, *mask_args, generator=generator)
        if not (targets != -100).any():  # nothing but special tokens
            continue
        loss, correct = mlm_loss(encoder, head, batch, targets, inputs, mixed_precision)
        losses += float(loss) * len(correct)
        hits, count = hits + int(correct.sum()), count + len(correct)
    encoder.train()
    return losses / count, hits / count


def save_encoder(out: Path, encoder: Encoder, tokenizer, source: dict):
    """A Hugging Face base-model directory of the encoder's family (BertModel, RobertaModel, ...); the pooler
    is left out (it was never trained here). Every file is written into a temporary sibling first and then
    renamed into `out`: a failed write (disk full) leaves no partial file there, and the temporary directory
    is removed."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        tmp.mkdir()
        state = {encoder.hf_name(k, with_prefix=False): v.detach().float().contiguous()
                 for k, v in encoder.state_dict().items() if not k.startswith("pooler.")}
        save_file(state, str(tmp / "model.safetensors"))
        base_model = family_of_encoder(encoder).architecture.replace("ForSequenceClassification", "Model")
        config = {"architectures": [base_model], **encoder.config.to_dict(), "source": source}
        (tmp / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        tokenizer.save(tmp)
        for written in tmp.iterdir():
            os.replace(written, out / written.name)
    except Exception as e:  # OSError, or safetensors' own error for the same causes
        raise UserError(f"cannot write {out} ({describe_write_error(e)})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@hydra.main(config_path="../conf", config_name="mlm", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig):
    out = check_output_dir(cfg.out, "out")
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise UserError(f"out={out} is not empty: choose another directory or pass overwrite=true")
    configure_cpu(cfg.threads)
    seed_everything(cfg.seed)
    device = torch.device("cpu")  # this step is written for (and measured on) the CPU only
    tokenizer, kept_rows = training_tokenizer(cfg.model, cfg.data)
    mask_id = next((tokenizer.token_to_id(t) for t in MASK_TOKENS if tokenizer.token_to_id(t) is not None), None)
    if mask_id is None:
        raise UserError(f"{cfg.model.path}: vocabulary has no mask token (looked for {', '.join(MASK_TOKENS)})")
    encoder = load_encoder(cfg.model.path)
    if getattr(encoder.config, "embedding_size", None) not in (None, encoder.config.hidden_size):
        # The head's decoder is the word-embedding table, embedding_size wide; this head is hidden_size wide.
        raise UserError(f"{cfg.model.path}: ELECTRA with embedding_size {encoder.config.embedding_size} != "
                        f"hidden_size {encoder.config.hidden_size}: continued MLM pretraining supports tied "
                        "decoders of the hidden width only")
    transform = BERTSentenceTransform(tokenizer, cfg.data.max_len, text_prefix=cfg.data.text_prefix,
                                      framing=framing_of(encoder.config.model_type, tokenizer))
    splits = read_splits(cfg.data)  # the training split's texts only; validation texts only score
    train, held_out = (ClassificationDataset(splits[s].texts, None, transform) for s in ("train", "validation"))

    if kept_rows is not None:
        encoder.keep_vocabulary(kept_rows)
    head = MaskedLMHead(encoder)
    both = nn.ModuleDict({"encoder": encoder, "head": head})
    optimizer = build_optimizer(both, cfg.lr, cfg.weight_decay)
    sampler = LengthGroupedBatchSampler(train.valid_length, cfg.batch_size, shuffle=True, seed=cfg.seed)
    total = cfg.epochs * len(sampler)
    warmup = round(cfg.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_with_warmup(s, warmup, total))
    special = sorted({tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id, tokenizer.unk_id, mask_id})
    mask_args = (special, mask_id, encoder.config.vocab_size, cfg.mask_probability)
    mixed_precision = autocast(device, cfg.precision)
    generator = torch.Generator().manual_seed(cfg.seed)
    print(f"masked-LM on {len(train)} training texts, {total} steps of {cfg.batch_size}, vocabulary "
          f"{encoder.config.vocab_size:,}; held out: {len(held_out)} validation texts")
    history = [dict(zip(("loss", "accuracy"), held_out_score(encoder, head, held_out, mask_args, mixed_precision)))]
    print(f"before: held-out masked-token loss {history[0]['loss']:.4f}, accuracy {history[0]['accuracy']:.4f}")
    started = time.perf_counter()
    encoder.train()
    for epoch in range(cfg.epochs):
        sampler.set_epoch(epoch)
        for indices in sampler:
            mlm_step(both, train.collate(indices), optimizer, scheduler, mask_args, mixed_precision, generator)
        loss_, accuracy = held_out_score(encoder, head, held_out, mask_args, mixed_precision)
        history.append({"loss": loss_, "accuracy": accuracy})
        print(f"epoch {epoch + 1}: held-out masked-token loss {loss_:.4f}, accuracy {accuracy:.4f} "
              f"({time.perf_counter() - started:.0f}s)")
    source = {"continued_masked_lm": {"from": str(cfg.model.path), "data": cfg.data.name, "split": "train",
                                      "epochs": cfg.epochs, "steps": total, "lr": cfg.lr,
                                      "held_out_validation": history}}
    save_encoder(out, encoder, tokenizer, source)
    print(f"wrote {out}: use model=bert model.path={out} (or experiment=... model.path={out})")


if __name__ == "__main__":
    check_overrides("mlm")
    main()
