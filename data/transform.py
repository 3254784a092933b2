"""BERTSentenceTransform: text (or a text pair) -> token_ids, valid_length, segment_ids.

The KoBERT tutorial's transform, minus its fixed padding: sequences stay as long as they are and
the collate function pads each batch to its longest member (data/dataset.py).

Framings (what surrounds the texts, and whether the second text gets segment 1):
- "bert": [CLS] a [SEP] (b [SEP]), segments 0 then 1 (BERT, DistilBERT, ELECTRA, DeBERTa-v2: its
  tokenizer gives the second text token type 1, which v3 configs (type_vocab_size 0) never read);
- "roberta": <s> a </s> (</s> b </s>), segments all 0 (RoBERTa, XLM-R, CamemBERT: one token type);
- "bert_one_segment": [CLS] a [SEP] (b [SEP]), segments all 0: a RoBERTa model whose checkpoint ships a
  BertTokenizer (KLUE-RoBERTa), framed as that tokenizer frames pairs, with the model's one token type;
  and ModernBERT, whose tokenizer.json frames texts so and whose model has no token types.
"""
from dataclasses import dataclass

import numpy as np

from common.errors import UserError
from common.model_types import ROBERTA_FAMILY
from data.tokenizer import Tokenizer, encode_up_to

# framing -> (separators between the texts of a pair, whether the second text is segment 1)
FRAMINGS = {"bert": (1, True), "roberta": (2, False), "bert_one_segment": (1, False)}
BERT_FAMILY = ("bert", "distilbert", "electra", "deberta-v2")
NO_TOKEN_TYPES = ("modernbert",)


def framing_of(model_type: str, tokenizer: Tokenizer | None = None) -> str:
    """The framing for config.json's model_type. A RoBERTa-family model frames pairs as its tokenizer's
    files do when they say (KLUE-RoBERTa's BertTokenizer: one separator), else as RoBERTa does."""
    if model_type in BERT_FAMILY:
        return "bert"
    if model_type in ROBERTA_FAMILY:
        one_separator = tokenizer is not None and getattr(tokenizer, "pair_separators", None) == 1
        return "bert_one_segment" if one_separator else "roberta"
    if model_type in NO_TOKEN_TYPES:
        return "bert_one_segment"
    raise UserError(f"no input framing is known for model_type {model_type!r} "
                    f"(known: {', '.join(BERT_FAMILY + ROBERTA_FAMILY + NO_TOKEN_TYPES)})")


@dataclass
class EncodedTexts:
    token_ids: list  # one int32 array per text, [CLS] a [SEP] (b [SEP]); <s> a </s> (</s> b </s>)
    segment_ids: list  # same shapes; 0 for the first text and its [SEP], 1 for the second (bert framing)
    valid_length: np.ndarray  # int64 (N,)
    n_truncated: int  # how many texts lost tokens to max_len


def truncated_pair_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Longest-first truncation as transformers' tokenizers (the Rust `tokenizers` library) do it: the
    shorter text is kept whole if the longer one can fill the rest; otherwise each gets half, the odd
    token going to the longer text (the second on ties). Not the old Python tokenizers' one-token-at-a-
    time loop, which gives the odd token to the other text."""
    if len_a + len_b <= budget:
        return len_a, len_b
    short, long = sorted((len_a, len_b))
    keep_short, keep_long = short, max(short, budget - short)
    if keep_short + keep_long > budget:
        keep_short, keep_long = budget // 2, budget - budget // 2
    return (keep_long, keep_short) if len_a > len_b else (keep_short, keep_long)


class BERTSentenceTransform:
    def __init__(self, tokenizer: Tokenizer, max_len: int, pair: bool = False, text_prefix: str = "",
                 framing: str = "bert"):
        if framing not in FRAMINGS:
            raise ValueError(f"framing={framing!r}: expected one of {', '.join(FRAMINGS)}")
        self.separators, self.second_segment = FRAMINGS[framing]
        n_special = 2 + (self.separators if pair else 0)
        if max_len < n_special + 1:  # common/checks.py knows BERT's minimum; RoBERTa's pairs need one more
            raise UserError(f"data.max_len={max_len} leaves no room for text between the {n_special} special "
                            f"tokens of a {framing}-framed {'pair' if pair else 'text'}: "
                            f"set it to at least {n_special + 1}")
        self.tokenizer, self.max_len, self.pair, self.framing = tokenizer, max_len, pair, framing
        self.text_prefix = text_prefix  # e.g. E5's "query: ", before the first text of every example

    def encode(self, texts_a: list[str], texts_b: list[str] | None = None) -> EncodedTexts:
        """Tokenizes a whole list in one batched call (the Rust tokenizer parallelises it)."""
        if self.pair and texts_b is None:
            raise ValueError("this transform expects sentence pairs")
        # At most max_len ids of a text are kept (encode_up_to: a huge text is not tokenized whole); a pair
        # whose texts both pass max_len is tokenized whole below: which one is longer decides the odd id.
        texts_a = [self.text_prefix + t for t in texts_a] if self.text_prefix else texts_a
        ids_a = encode_up_to(self.tokenizer, texts_a, self.max_len)
        ids_b = encode_up_to(self.tokenizer, texts_b, self.max_len) if self.pair else None
        tok = self.tokenizer
        token_ids, segment_ids, lengths, n_truncated = [], [], [], 0
        for i, a in enumerate(ids_a):
            if ids_b is None:
                keep_a, b = min(len(a), self.max_len - 2), []
                row = [tok.cls_id, *a[:keep_a], tok.sep_id]
                n_truncated += keep_a < len(a)
            else:
                b = ids_b[i]
                if len(a) > self.max_len and len(b) > self.max_len:
                    a, b = self.tokenizer.encode_batch([texts_a[i], texts_b[i]])
                budget = self.max_len - 2 - self.separators
                keep_a, keep_b = truncated_pair_lengths(len(a), len(b), budget)
                n_truncated += keep_a + keep_b < len(a) + len(b)
                # The second text's segment starts after the first [SEP] (bert); RoBERTa's extra </s> opens it.
                b = [tok.sep_id] * (self.separators - 1) + [*b[:keep_b], tok.sep_id]
                row = [tok.cls_id, *a[:keep_a], tok.sep_id, *b]
            lengths.append(len(row))
            segments = np.zeros(len(row), dtype=np.int32)
            if self.second_segment:
                segments[len(row) - len(b):] = 1
            token_ids.append(np.asarray(row, dtype=np.int32))
            segment_ids.append(segments)
        return EncodedTexts(token_ids, segment_ids, np.asarray(lengths, dtype=np.int64), n_truncated)
