"""RoBERTa, XLM-RoBERTa and CamemBERT (model_type "roberta", "xlm-roberta", "camembert"): BERT's layers
with positions numbered from padding_idx + 1.

transformers' create_position_ids_from_input_ids numbers the non-padding tokens padding_idx + 1,
padding_idx + 2, ... and gives padding the position padding_idx (hence 514-row tables for 512 tokens).
Our batches are right-padded with the real tokens first (data/dataset.py), so the attention mask gives
the same numbers. A BERT embedding on these weights would give every token the position vector of the
token two places before it: loading without a word and computing something else.
"""
from dataclasses import dataclass

import torch

from common.errors import UserError
from common.model_types import ROBERTA_FAMILY
from model.encoders.bert import HF_KEY_RULES, Embeddings
from model.encoders.blocks import Encoder, EncoderConfig


@dataclass
class RobertaConfig(EncoderConfig):
    model_type: str = "roberta"  # or xlm-roberta, camembert: the same network

    MODEL_TYPES = ROBERTA_FAMILY


class RobertaEmbeddings(Embeddings):
    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg)
        self.padding_idx = cfg.pad_token_id

    def positions(self, attention_mask):
        counted = torch.cumsum(attention_mask, 1, dtype=torch.long) * attention_mask
        return counted + self.padding_idx

    def vocabulary_renumbered(self, pad_token_id: int):
        # The position numbering is tied to the pad id of the pretrained model; a trimmed vocabulary
        # that moved it would need a config.json no transformers RoBERTa reads the same way.
        if pad_token_id != self.padding_idx:
            raise UserError(f"model.trim_vocab would move RoBERTa's pad token from id {self.padding_idx} to "
                            f"{pad_token_id}, which also numbers its positions: set model.trim_vocab=false")


class RobertaEncoder(Encoder):
    display_name = "RoBERTa"
    config_class = RobertaConfig
    hf_prefix = "roberta."  # XLM-R's and CamemBERT's task checkpoints use it too
    hf_key_rules = HF_KEY_RULES

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg, RobertaEmbeddings(cfg))


# RobertaForSequenceClassification's head on <s>: dropout, dense, tanh, dropout, out_proj
HF_HEAD_RULES = [(r"pre_head\.", "classifier.dense."), (r"head\.", "classifier.out_proj.")]
