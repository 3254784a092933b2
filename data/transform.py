"""BERTSentenceTransform: text (or a text pair) -> token_ids, valid_length, segment_ids.

The KoBERT tutorial's transform, minus its fixed padding: sequences stay as long as they are and
the collate function pads each batch to its longest member (data/dataset.py).
"""
from dataclasses import dataclass

import numpy as np

from data.tokenizer import Tokenizer


@dataclass
class EncodedTexts:
    token_ids: list  # one int32 array per text, [CLS] a [SEP] (b [SEP])
    segment_ids: list  # same shapes; 0 for the first text and its [SEP], 1 for the second
    valid_length: np.ndarray  # int64 (N,)
    n_truncated: int  # how many texts lost tokens to max_len


def truncated_pair_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Longest-first truncation, as Hugging Face does it: trim the longer text, the second on ties."""
    if len_a + len_b <= budget:
        return len_a, len_b
    keep_a = min(len_a, max(budget - len_b, (budget + 1) // 2))
    return keep_a, min(len_b, budget - keep_a)


class BERTSentenceTransform:
    def __init__(self, tokenizer: Tokenizer, max_len: int, pair: bool = False, text_prefix: str = ""):
        if max_len < (4 if pair else 3):
            raise ValueError(f"max_len={max_len} leaves no room for text between [CLS] and [SEP]")
        self.tokenizer, self.max_len, self.pair = tokenizer, max_len, pair
        self.text_prefix = text_prefix  # e.g. E5's "query: ", before the first text of every example

    def encode(self, texts_a: list[str], texts_b: list[str] | None = None) -> EncodedTexts:
        """Tokenizes a whole list in one batched call (the Rust tokenizer parallelises it)."""
        if self.pair and texts_b is None:
            raise ValueError("this transform expects sentence pairs")
        ids_a = self.tokenizer.encode_batch([self.text_prefix + t for t in texts_a] if self.text_prefix else texts_a)
        ids_b = self.tokenizer.encode_batch(texts_b) if self.pair else None
        tok = self.tokenizer
        token_ids, segment_ids, lengths, n_truncated = [], [], [], 0
        for i, a in enumerate(ids_a):
            if ids_b is None:
                keep_a, b = min(len(a), self.max_len - 2), []
                row = [tok.cls_id, *a[:keep_a], tok.sep_id]
                n_truncated += keep_a < len(a)
            else:
                b = ids_b[i]
                keep_a, keep_b = truncated_pair_lengths(len(a), len(b), self.max_len - 3)
                n_truncated += keep_a + keep_b < len(a) + len(b)
                b = [*b[:keep_b], tok.sep_id]
                row = [tok.cls_id, *a[:keep_a], tok.sep_id, *b]
            lengths.append(len(row))
            segments = np.zeros(len(row), dtype=np.int32)
            segments[len(row) - len(b):] = 1
            token_ids.append(np.asarray(row, dtype=np.int32))
            segment_ids.append(segments)
        return EncodedTexts(token_ids, segment_ids, np.asarray(lengths, dtype=np.int64), n_truncated)
