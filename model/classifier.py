"""BERTClassifier: pretrained encoder -> pooled sentence vector -> dropout -> head.

Two heads (model.head):
- linear (default, for fresh fine-tuning): the chosen pooling (pooler | cls | mean), dropout, one Linear;
- family: the family's own *ForSequenceClassification head (model/encoders/families.py), so a fine-tuned Hugging Face
  classifier loads whole: BERT's pooler + Linear, RoBERTa's and ELECTRA's dropout + dense + tanh/GELU +
  dropout + out_proj on the first token, DistilBERT's pre_classifier + ReLU + dropout + classifier,
  ModernBERT's dense + GELU + LayerNorm + dropout + classifier on [CLS] or the mean (its classifier_pooling).
Our names are `pre_head` (the dense layer, family heads only), `pre_norm` (the LayerNorm after it, ModernBERT)
and `head` (the last Linear) whatever the family.
"""
import torch
from torch import nn

from common.errors import UserError
from model.encoders.blocks import ACTIVATIONS, Encoder
from model.dropout import Dropout
from model.encoders.families import family_of_encoder

POOLINGS = ("pooler", "cls", "mean")
HEADS = ("linear", "family")
HEAD_ACTIVATIONS = {"tanh": torch.tanh, **ACTIVATIONS}


def attention_mask_from(valid_length: torch.Tensor, seq_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool mask, in one comparison (the tutorial loops over rows)."""
    return torch.arange(seq_len, device=valid_length.device)[None, :] < valid_length[:, None]


def head_pooling(encoder: Encoder, head: str, pooling: str) -> str:
    """The pooling a head reads: the family's own for head=family; for the linear head, `pooling`, if the
    encoder can give it (ELECTRA and DistilBERT have no pooler)."""
    if head not in HEADS:
        raise UserError(f"model.head={head!r} is not one of {', '.join(HEADS)}")
    if head == "family":
        return family_of_encoder(encoder).head_pooling or encoder.config.classifier_pooling
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r} is not one of {POOLINGS}")
    if pooling == "pooler" and encoder.pooler is None:
        name = type(encoder).display_name
        raise UserError(f"model.pooling=pooler: {name} has no pooler; use model.pooling=cls or mean, or "
                        f"model.head=family ({name}'s own classification head)")
    return pooling


class BERTClassifier(nn.Module):
    def __init__(self, encoder: Encoder, num_classes: int, dropout: float = 0.1, pooling: str = "pooler",
                 head: str = "linear"):
        super().__init__()
        self.encoder, self.head_kind = encoder, head
        self.pooling = head_pooling(encoder, head, pooling)
        # pooler/cls pooling read [CLS] alone: the last layer skips the other positions (model/encoders/blocks.py).
        # A switch only for measuring it (model.first_token_only); the outputs are the same either way.
        self.first_token_only = True
        self.pretrained_head = False  # a fine-tuned classifier's head was loaded (model/hf_classifier.py)
        self.dropout = Dropout(dropout)
        hidden = encoder.config.hidden_size
        family = family_of_encoder(encoder)
        activation = family.head_activation if head == "family" else None
        head_norm = head == "family" and family.head_norm  # ModernBERT's settings, from its config.json
        dense_bias = encoder.config.classifier_bias if head_norm else True
        self.pre_head = nn.Linear(hidden, hidden, bias=dense_bias) if activation else None
        self.pre_activation = HEAD_ACTIVATIONS[activation] if activation else None
        self.pre_norm = (nn.LayerNorm(hidden, eps=encoder.config.norm_eps, bias=encoder.config.norm_bias)
                         if head_norm else None)
        self.dropout_first = head == "family" and family.head_dropout_first
        self.head = nn.Linear(hidden, num_classes)
        for linear in (self.pre_head, self.head):
            if linear is not None:
                nn.init.normal_(linear.weight, std=0.02)
                if linear.bias is not None:
                    nn.init.zeros_(linear.bias)

    @torch.no_grad()
    def start_at_label_frequencies(self, frequencies):
        """Multi-label heads: each sigmoid starts at its label's training frequency (bias = log-odds, the
        prior initialisation of Lin et al. 2017) instead of 0.5. With 28 labels at ~4% each, a zero bias
        spends the first epoch's gradients on pushing every output down before any label is learnt."""
        p = torch.as_tensor(frequencies, dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
        self.head.bias.copy_(torch.log(p / (1 - p)))

    def sentence_vectors(self, token_ids, valid_length, segment_ids=None):
        mask = attention_mask_from(valid_length, token_ids.shape[1])
        hidden, pooled = self.encoder(token_ids, mask, segment_ids,
                                      first_token_only=self.first_token_only and self.pooling != "mean")
        if self.pooling == "pooler":  # tanh(dense([CLS])), as BertForSequenceClassification / KoBERT
            return pooled
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / valid_length.clamp(min=1).unsqueeze(-1).to(hidden.dtype)

    def classify(self, sentence_vectors):
        """Logits from pooled vectors: lets analysis keep the vectors forward would discard."""
        x = sentence_vectors
        if self.pre_head is not None:
            if self.dropout_first:
                x = self.dropout(x)
            x = self.pre_activation(self.pre_head(x))
            if self.pre_norm is not None:
                x = self.pre_norm(x)
        return self.head(self.dropout(x))

    def forward(self, token_ids, valid_length, segment_ids=None):
        return self.classify(self.sentence_vectors(token_ids, valid_length, segment_ids))
