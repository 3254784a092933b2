"""An encoder directory in skt/kobert-base-v1's layout, with nothing pretrained in it: a SentencePiece
vocabulary learned from the training split and a randomly initialised BERT of the size you choose.

    python -m model.scratch out=encoders/korean_scratch        # data=korean_emotion's training split
    python train.py experiment=kobert_emotion model.path=encoders/korean_scratch

No pretrained Korean encoder can be downloaded here; this is the honest offline stand-in (the whole
encoder then learns from the task's labels alone). The directory holds what KoBERT publishes, with the
same special-token ids ([UNK] 0, [PAD] 1, [CLS] 2, [SEP] 3, [MASK] 4), so it exercises the very path a
real KoBERT directory takes:
  config.json                                    BertModel config (vocab_size = pieces learned, pad_token_id 1)
  model.safetensors                              BertModel key names, BERT's N(0, 0.02) initialisation
  spiece.model                                   SentencePiece model; its ids are the embedding rows
  tokenizer_config.json, special_tokens_map.json  KoBERT's
Only the training split's texts reach SentencePiece (data.build.read_splits carves the split exactly
as train.py will), so no validation or test sentence shapes the vocabulary.
"""
import io
import json
from dataclasses import fields, replace
from pathlib import Path

import hydra
import sentencepiece as spm
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file

import common.config  # noqa: F401  (registers the ${package_file:} and ${project_root:} resolvers)
from data.build import read_splits
from common.cli import check_overrides
from common.errors import UserError, exit_on_user_error
from model.encoders.bert import BertConfig, BertEncoder, ours_to_hf

# KoBERT's special pieces and their ids (its config.json has pad_token_id 1; its tokenizer encodes
# "[CLS] ... [SEP]" as 2 ... 3). bos/eos are SentencePiece control symbols: never produced from text.
SPECIAL_PIECES = {"unk_id": 0, "unk_piece": "[UNK]", "pad_id": 1, "pad_piece": "[PAD]",
                  "bos_id": 2, "bos_piece": "[CLS]", "eos_id": 3, "eos_piece": "[SEP]",
                  "control_symbols": ["[MASK]"]}
# skt/kobert-base-v1's tokenizer_config.json and special_tokens_map.json (transformers' XLNetTokenizer
# settings); data.tokenizer reads neither, they are there for other tools.
MASK_TOKEN = {"content": "[MASK]", "single_word": False, "lstrip": True, "rstrip": False, "normalized": True}
SPECIAL_TOKENS_MAP = {"bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]",
                      "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": MASK_TOKEN}
TOKENIZER_CONFIG = {"do_lower_case": False, "remove_space": True, "keep_accents": False, **SPECIAL_TOKENS_MAP,
                    "mask_token": {**MASK_TOKEN, "__type": "AddedToken"}, "additional_special_tokens": None,
                    "sp_model_kwargs": {}, "tokenizer_class": "XLNetTokenizer"}


def train_sentencepiece(texts: list[str], vocab_cfg, seed: int) -> bytes:
    """The serialized SentencePiece model, trained in memory on `texts`."""
    model = io.BytesIO()
    spm.set_random_generator_seed(seed)  # unigram training samples sentences; this pins the sample
    try:
        spm.SentencePieceTrainer.Train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_cfg.size,
            model_type=vocab_cfg.model_type, character_coverage=vocab_cfg.character_coverage,
            num_threads=1, minloglevel=2, **SPECIAL_PIECES)
    except RuntimeError as e:  # e.g. "Vocabulary size too high (9000). Please set it to a value <= 8431."
        reason = str(e).strip().splitlines()[-1].split("] ")[-1]
        reason = reason.replace("--character_coverage option", "vocab.character_coverage")
        raise UserError(f"vocab: SentencePiece cannot train on {len(texts)} training texts ({reason})") from None
    return model.getvalue()


def encoder_config(encoder_cfg, vocab_size: int) -> BertConfig:
    settings = OmegaConf.to_container(encoder_cfg)
    known = {f.name for f in fields(BertConfig)} - {"vocab_size", "pad_token_id"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UserError(f"encoder.{unknown[0]} is not a BERT setting ({', '.join(sorted(known))})")
    cfg = BertConfig(**settings, vocab_size=vocab_size, pad_token_id=SPECIAL_PIECES["pad_id"])
    if cfg.hidden_size % cfg.num_attention_heads:
        raise UserError(f"encoder.hidden_size={cfg.hidden_size} is not a multiple of "
                        f"encoder.num_attention_heads={cfg.num_attention_heads}")
    return cfg


def write_encoder_dir(out: Path, sentencepiece_model: bytes, cfg: BertConfig, seed: int) -> int:
    """Writes the KoBERT-layout directory; returns the encoder's parameter count."""
    torch.manual_seed(seed)
    encoder = BertEncoder(cfg)
    out.mkdir(parents=True, exist_ok=True)
    state = {ours_to_hf(k, prefix=""): v.contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    hf_config = {"architectures": ["BertModel"], "model_type": "bert", **cfg.to_dict(),
                 "position_embedding_type": "absolute", "initializer_range": 0.02,
                 "pretraining": "none: random initialisation (python -m model.scratch)"}
    (out / "config.json").write_text(json.dumps(hf_config, indent=2))
    (out / "spiece.model").write_bytes(sentencepiece_model)
    (out / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))
    (out / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS_MAP))
    return sum(p.numel() for p in encoder.parameters())


@hydra.main(config_path="../conf", config_name="scratch", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig):
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"out={out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not cfg.overwrite:
        raise UserError(f"out={out} is not empty: choose another directory or pass overwrite=true")
    bert_cfg = encoder_config(cfg.encoder, cfg.vocab.size)  # checked before the slow part
    train = read_splits(cfg.data)["train"]
    sentencepiece_model = train_sentencepiece(train.texts, cfg.vocab, cfg.seed)
    pieces = spm.SentencePieceProcessor(model_proto=sentencepiece_model).GetPieceSize()
    bert_cfg = replace(bert_cfg, vocab_size=pieces)
    n_params = write_encoder_dir(out, sentencepiece_model, bert_cfg, cfg.seed)
    print(f"wrote {out}: spiece.model ({pieces} pieces learned from the {len(train)} texts of {train.source}), "
          f"random BERT {bert_cfg.num_hidden_layers} layers x {bert_cfg.hidden_size} "
          f"({n_params / 1e6:.1f}M parameters, no pretraining)")
    data_overrides = [o for o in HydraConfig.get().overrides.task if o.startswith("data")]
    recipe = ["experiment=kobert_emotion"] if cfg.data.name == "korean_emotion" else ["model=bert", *data_overrides]
    print(f"fine-tune it: python train.py {' '.join(recipe)} model.path={out}")


if __name__ == "__main__":
    check_overrides("scratch")
    main()
