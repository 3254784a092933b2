"""BERTClassifier: pretrained encoder -> pooled sentence vector -> dropout -> linear head."""
import torch
from torch import nn

from model.bert import BertEncoder
from model.dropout import Dropout

POOLINGS = ("pooler", "cls", "mean")


def attention_mask_from(valid_length: torch.Tensor, seq_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool mask, in one comparison (the tutorial loops over rows)."""
    return torch.arange(seq_len, device=valid_length.device)[None, :] < valid_length[:, None]


class BERTClassifier(nn.Module):
    def __init__(self, encoder: BertEncoder, num_classes: int, dropout: float = 0.1, pooling: str = "pooler"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not one of {POOLINGS}")
        self.encoder, self.pooling = encoder, pooling
        # pooler/cls pooling read [CLS] alone: the last layer skips the other positions (model/bert.py).
        # A switch only for measuring it (model.first_token_only); the outputs are the same either way.
        self.first_token_only = True
        self.dropout = Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

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
        return self.head(self.dropout(sentence_vectors))

    def forward(self, token_ids, valid_length, segment_ids=None):
        return self.classify(self.sentence_vectors(token_ids, valid_length, segment_ids))
