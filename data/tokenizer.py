"""One tokenizer interface over any tokenizer.json (WordPiece, Unigram, BPE: `tokenizers`), a bare
vocab.txt (WordPiece) and SentencePiece models (`sentencepiece`, KoBERT-style).

All return ids *without* special tokens; `BERTSentenceTransform` adds [CLS]/[SEP] (or <s>/</s>) and
truncates, so truncation and pair handling live in one place whatever the tokenizer.
"""
import json
import shutil
from pathlib import Path

from common.errors import UserError

SPECIAL_TOKEN_NAMES = {  # BERT spelling first, then SentencePiece/XLNet spellings
    "cls": ["[CLS]", "<cls>", "<s>"],
    "sep": ["[SEP]", "<sep>", "</s>"],
    "pad": ["[PAD]", "<pad>"],
    "unk": ["[UNK]", "<unk>"],
}
TOKENIZER_CONFIG_FILES = ["tokenizer_config.json", "special_tokens_map.json"]


class Tokenizer:
    """Ids of text pieces plus the special token ids BERT needs. Subclasses fill `files` and `_encode_batch`."""

    files: list[Path]  # what `save` copies so the tokenizer can be rebuilt from a checkpoint

    def __init__(self, token_to_id, vocab_size: int, source: Path, named: dict | None = None):
        """`named`: role -> token the files name for it (tokenizer_config.json, the post-processor);
        roles they leave out are looked up by the usual spellings."""
        self.vocab_size, self.token_to_id = vocab_size, token_to_id  # token -> id, None if absent
        ids = {}
        for role, names in SPECIAL_TOKEN_NAMES.items():
            candidates = [named[role]] if named and named.get(role) else names
            ids[role] = next((token_to_id(n) for n in candidates if token_to_id(n) is not None), None)
            if ids[role] is None:
                raise UserError(f"{source}: vocabulary has no {role} token (looked for {', '.join(candidates)})")
        self.cls_id, self.sep_id, self.pad_id, self.unk_id = ids["cls"], ids["sep"], ids["pad"], ids["unk"]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._encode_batch(list(texts))

    def save(self, directory: Path):
        for f in self.files:
            shutil.copyfile(f, Path(directory) / f.name)


class TokenizerJson(Tokenizer):
    """A Hugging Face tokenizer.json of any model type; special tokens as tokenizer_config.json (or
    special_tokens_map.json) names them, else as its post-processor frames a text, else by spelling."""

    def __init__(self, directory: Path, spec_text: str | None = None):
        from tokenizers import Tokenizer as HFTokenizer

        path = directory / "tokenizer.json"
        try:
            self.spec_text = spec_text if spec_text is not None else path.read_text(encoding="utf-8")
            tok = HFTokenizer.from_str(self.spec_text)
        except Exception as e:  # the Rust library raises a plain Exception with its parse error
            raise UserError(f"{path}: cannot read tokenizer ({str(e).splitlines()[0] if str(e) else e})") from None
        self.config_files = [directory / f for f in TOKENIZER_CONFIG_FILES if (directory / f).exists()]
        self.files = [path, *self.config_files]
        # Truncation, padding and the special tokens are BERTSentenceTransform's job, not the file's.
        tok.no_truncation()
        tok.no_padding()
        self._tok, self.directory = tok, directory
        spec = json.loads(self.spec_text)
        named = special_tokens_of_post_processor(spec.get("post_processor")) | special_tokens_named_in(directory)
        super().__init__(tok.token_to_id, tok.get_vocab_size(with_added_tokens=True), directory, named)

    def _encode_batch(self, texts):
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def save(self, directory: Path):
        (Path(directory) / "tokenizer.json").write_text(self.spec_text, encoding="utf-8")
        for f in self.config_files:
            shutil.copyfile(f, Path(directory) / f.name)


class WordPieceTokenizer(Tokenizer):
    """A bare vocab.txt, tokenized as BertTokenizer does: clean text, split CJK, lower-case if asked."""

    def __init__(self, directory: Path):
        from tokenizers import Tokenizer as HFTokenizer, normalizers, pre_tokenizers
        from tokenizers.models import WordPiece

        vocab_txt = directory / "vocab.txt"
        lowercase = read_tokenizer_config(directory).get("do_lower_case", True)
        tok = HFTokenizer(WordPiece.from_file(str(vocab_txt), unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self.files = [vocab_txt] + [directory / f for f in TOKENIZER_CONFIG_FILES if (directory / f).exists()]
        self._tok = tok
        # max id + 1, not the number of distinct tokens: a vocab.txt with a repeated line leaves a gap.
        super().__init__(tok.token_to_id, max(tok.get_vocab().values()) + 1, directory)

    def _encode_batch(self, texts):
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]


def special_tokens_named_in(directory: Path) -> dict:
    """Role -> token from tokenizer_config.json, then special_tokens_map.json (values may be
    {"content": ...} objects)."""
    named = {}
    for source in (read_json(directory / "special_tokens_map.json"), read_tokenizer_config(directory)):
        for role in SPECIAL_TOKEN_NAMES:
            value = source.get(f"{role}_token")
            value = value.get("content") if isinstance(value, dict) else value
            if isinstance(value, str):
                named[role] = value
    return named


def special_tokens_of_post_processor(post_processor) -> dict:
    """What a single text is framed with: [CLS] ... [SEP] (BertProcessing), <s> ... </s> (Roberta, templates)."""
    if not post_processor:
        return {}
    kind = post_processor.get("type")
    if kind in ("BertProcessing", "RobertaProcessing"):
        return {"cls": post_processor["cls"][0], "sep": post_processor["sep"][0]}
    if kind == "TemplateProcessing":
        specials = [item["SpecialToken"]["id"] for item in post_processor.get("single", []) if "SpecialToken" in item]
        if len(specials) >= 2:
            return {"cls": specials[0], "sep": specials[-1]}
    if kind == "Sequence":
        for inner in post_processor.get("processors", []):
            found = special_tokens_of_post_processor(inner)
            if found:
                return found
    return {}


class SentencePieceTokenizer(Tokenizer):
    """KoBERT-style: `spiece.model` (any *.model), optionally a `vocab.txt` that fixes piece ids."""

    def __init__(self, directory: Path, model_file: Path):
        import sentencepiece as spm

        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.Load(str(model_file))
        except (OSError, RuntimeError) as e:
            raise UserError(f"{model_file}: cannot read SentencePiece model ({e})") from None
        self.files = [model_file] + [directory / f for f in TOKENIZER_CONFIG_FILES if (directory / f).exists()]
        vocab_txt = directory / "vocab.txt"
        if vocab_txt.exists():
            # monologg-style KoBERT: pieces are looked up in vocab.txt, whose order defines the ids.
            # One token per "\n"-ended line; splitlines() would also break at U+0085/U+2028 inside tokens.
            tokens = [t.removesuffix("\r") for t in vocab_txt.read_text(encoding="utf-8").rstrip("\n").split("\n")]
            self._vocab = {t: i for i, t in enumerate(tokens)}
            self.files.append(vocab_txt)
            super().__init__(self._vocab.get, len(tokens), directory)
        else:
            # skt/kobert-base-v1: the SentencePiece model's own ids are the embedding rows.
            self._vocab = None
            super().__init__(self._piece_id, self._sp.GetPieceSize(), directory)

    def _piece_id(self, piece: str):
        # PieceToId answers unk_id for unknown pieces; tell that apart from the unk piece itself.
        i = self._sp.PieceToId(piece)
        return i if i != self._sp.unk_id() or piece == self._sp.IdToPiece(i) else None

    def _encode_batch(self, texts):
        if self._vocab is None:
            return self._sp.Encode(texts)
        unk = self.unk_id
        return [[self._vocab.get(p, unk) for p in pieces] for pieces in self._sp.Encode(texts, out_type=str)]


def read_tokenizer_config(directory: Path) -> dict:
    return read_json(directory / "tokenizer_config.json")


def read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def load_tokenizer(directory) -> Tokenizer:
    """Picks the tokenizer from the files present: tokenizer.json > SentencePiece model > vocab.txt."""
    directory = Path(directory)
    if (directory / "tokenizer.json").exists():
        return TokenizerJson(directory)
    sp_models = sorted(directory.glob("*.model"))
    if sp_models:
        preferred = directory / "spiece.model"
        return SentencePieceTokenizer(directory, preferred if preferred.exists() else sp_models[0])
    if (directory / "vocab.txt").exists():
        return WordPieceTokenizer(directory)
    raise UserError(f"{directory}: no tokenizer files (tokenizer.json, vocab.txt or spiece.model)")
