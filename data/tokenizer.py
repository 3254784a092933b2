"""One tokenizer interface over any tokenizer.json (WordPiece, Unigram, byte-level BPE: `tokenizers`), a
bare vocab.txt (WordPiece: BERT, DistilBERT, ELECTRA, KLUE-RoBERTa), SentencePiece models (`sentencepiece`,
KoBERT-style) and XLM-R's sentencepiece.bpe.model numbered as fairseq numbers it.

All return ids *without* special tokens; `BERTSentenceTransform` adds [CLS]/[SEP] (or <s>/</s>) and
truncates, so truncation and pair handling live in one place whatever the tokenizer.

Every text is put in Unicode NFC before any tokenizer sees it (`Tokenizer.encode_batch`): the same
Korean sentence typed on Windows (precomposed syllables) and on macOS (often decomposed jamo) is the
same text, but byte-level BPE and cased WordPiece do not normalise and would give different ids. NFC is
canonically equivalent to the input, and tokenizers that normalise themselves (NFD for uncased
WordPiece, NFKC for SentencePiece) give the same ids for NFC(x) as for x.
"""
import json
import re
import shutil
import unicodedata
from pathlib import Path

from common.errors import UserError

SPECIAL_TOKEN_NAMES = {  # BERT spelling first, then SentencePiece/XLNet spellings
    "cls": ["[CLS]", "<cls>", "<s>"],
    "sep": ["[SEP]", "<sep>", "</s>"],
    "pad": ["[PAD]", "<pad>"],
    "unk": ["[UNK]", "<unk>"],
}
TOKENIZER_CONFIG_FILES = ["tokenizer_config.json", "special_tokens_map.json"]
# How many separators a tokenizer class puts between the texts of a pair: [CLS] a [SEP] b [SEP] or
# <s> a </s></s> b </s> (transformers' class names, "Fast" stripped).
PAIR_SEPARATORS_OF_CLASS = {"BertTokenizer": 1, "DistilBertTokenizer": 1, "ElectraTokenizer": 1,
                            "RobertaTokenizer": 2, "XLMRobertaTokenizer": 2, "CamembertTokenizer": 2,
                            "DebertaV2Tokenizer": 1}
# The tokenizer class transformers' AutoTokenizer picks from config.json's model_type when
# tokenizer_config.json names none.
TOKENIZER_CLASS_OF_MODEL_TYPE = {"bert": "BertTokenizer", "distilbert": "DistilBertTokenizer",
                                 "electra": "ElectraTokenizer", "roberta": "RobertaTokenizer",
                                 "xlm-roberta": "XLMRobertaTokenizer", "camembert": "CamembertTokenizer",
                                 "deberta-v2": "DebertaV2Tokenizer"}


class Tokenizer:
    """Ids of text pieces plus the special token ids BERT needs. Subclasses fill `files` and `_encode_batch`."""

    files: list[Path]  # what `save` copies so the tokenizer can be rebuilt from a checkpoint
    # 1: [CLS] a [SEP] b [SEP]; 2: <s> a </s></s> b </s>; None: the files do not say (data/transform.py's
    # framing_of then follows the model type).
    pair_separators: int | None = None
    # Whether a text cut just before a space (one not after another) tokenizes, up to the cut, exactly as the
    # whole text does: words are split at spaces before any piece is chosen. Then a very long text need not
    # be tokenized whole to keep its first ids (encode_batch's `keep`).
    words_end_at_spaces: bool = False

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
        return self._encode_batch([unicodedata.normalize("NFC", t) for t in texts])

    def save(self, directory: Path):
        for f in self.files:
            shutil.copyfile(f, Path(directory) / f.name)


PREFIX_CHARS_PER_ID = 64  # texts up to 64 characters per kept id are tokenized whole, as before


def encode_up_to(tokenizer: Tokenizer, texts: list[str], keep: int) -> list[list[int]]:
    """Each text's ids where only the first `keep` are needed (a longer text still returns more than `keep`,
    so its truncation is seen). A text of more than PREFIX_CHARS_PER_ID x keep characters is tokenized by
    prefixes cut before a space, doubled until they give more than `keep` ids: the memory of a 50 MB line
    follows what is kept, not its length. Exact for tokenizers whose words end at spaces; the others (and
    duck-typed ones without the attribute) tokenize every text whole."""
    if not getattr(tokenizer, "words_end_at_spaces", False):
        return tokenizer.encode_batch(texts)
    limit = PREFIX_CHARS_PER_ID * keep
    ids = tokenizer.encode_batch([prefix_before_space(t, limit) for t in texts])
    for i, text in enumerate(texts):
        size = limit
        while len(ids[i]) <= keep and len(text) > size:  # the prefix was short of ids: a longer one
            size *= 2
            ids[i] = tokenizer.encode_batch([prefix_before_space(text, size)])[0]
    return ids


def prefix_before_space(text: str, size: int) -> str:
    """`text` cut before a space that follows a non-space: the last such space at or before `size`, else the
    first after it; the whole text when it is no longer than `size` or has no such space."""
    if len(text) <= size:
        return text
    cuts = re.compile(r"(?<=[^ ]) ")
    before = [m.start() for m in cuts.finditer(text, 1, size + 1)]
    after = None if before else cuts.search(text, size)
    cut = before[-1] if before else after.start() if after else len(text)
    return text[:cut]


# Pre-tokenizers that split words at spaces (ByteLevel with its regex, Metaspace with split), and
# normalizers that change characters one by one (or collapse runs of spaces): with only these, a text cut
# before a space gives the whole text's ids up to the cut.
SPACE_SPLITTING = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "ByteLevel", "Metaspace"}
LOCAL_PRE_TOKENIZERS = SPACE_SPLITTING | {"Punctuation", "Digits", "UnicodeScripts"}
LOCAL_NORMALIZERS = {"BertNormalizer", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "Precompiled",
                     "Prepend", "Strip"}

# Replacements of any whitespace (DeBERTa-v2's) beside those of runs of spaces (XLM-R's " {2,}"): exact only
# under a right Strip, which takes the tab or newline that ends a prefix, as the whole text folds it into the
# space after it.
WHITESPACE_FOLDING_PATTERNS = {r"\s{2,}|[\n\r\t]"}


def words_end_at_spaces(spec: dict) -> bool:
    """Whether this tokenizer.json splits words at spaces before choosing pieces (Tokenizer.words_end_at_spaces)."""
    def parts(node):
        if not node:
            return []
        return [p for inner in node.get("pretokenizers") or node.get("normalizers") or [] for p in parts(inner)] \
            if node.get("type") == "Sequence" else [node]

    pre, norm = parts(spec.get("pre_tokenizer")), parts(spec.get("normalizer"))
    splits = [p for p in pre if p.get("type") in SPACE_SPLITTING and p.get("use_regex", True)
              and p.get("split", True)]
    strips_right = any(n.get("type") == "Strip" and n.get("strip_right") for n in norm)

    def folds_whitespace(n):  # a run of whitespace -> one space: the cut's space still begins a word
        pattern = str(n.get("pattern", {}).get("Regex", n.get("pattern", {}).get("String", "x")))
        return (n.get("type") == "Replace" and n.get("content") == " "
                and (set(pattern) <= set(" {},0123456789") or pattern in WHITESPACE_FOLDING_PATTERNS and strips_right))

    return (bool(splits) and all(p.get("type") in LOCAL_PRE_TOKENIZERS for p in pre)
            and all(n.get("type") in LOCAL_NORMALIZERS or folds_whitespace(n) for n in norm)
            and not any(" " in t.get("content", "") for t in spec.get("added_tokens", [])))


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
        self.pair_separators = (pair_separators_of_post_processor(spec.get("post_processor"))
                                or pair_separators_of_class(directory))
        self.words_end_at_spaces = words_end_at_spaces(spec)
        super().__init__(tok.token_to_id, tok.get_vocab_size(with_added_tokens=True), directory, named)

    def _encode_batch(self, texts):
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def save(self, directory: Path):
        (Path(directory) / "tokenizer.json").write_text(self.spec_text, encoding="utf-8")
        for f in self.config_files:
            shutil.copyfile(f, Path(directory) / f.name)


class WordPieceTokenizer(Tokenizer):
    """A bare vocab.txt, tokenized as BertTokenizer (DistilBERT's, ELECTRA's, KLUE-RoBERTa's) does: clean
    text, split CJK unless told not to, lower-case and strip accents as tokenizer_config.json says."""

    words_end_at_spaces = True  # BertPreTokenizer

    def __init__(self, directory: Path):
        from tokenizers import Tokenizer as HFTokenizer, normalizers, pre_tokenizers
        from tokenizers.models import WordPiece

        vocab_txt = directory / "vocab.txt"
        config, named = read_tokenizer_config(directory), special_tokens_named_in(directory)
        lowercase = config.get("do_lower_case", True)
        tok = HFTokenizer(WordPiece.from_file(str(vocab_txt), unk_token=named.get("unk", "[UNK]")))
        # BertTokenizer's defaults: strip_accents None (= follow lower-casing), split CJK characters.
        tok.normalizer = normalizers.BertNormalizer(
            lowercase=lowercase, strip_accents=config.get("strip_accents"),
            handle_chinese_chars=config.get("tokenize_chinese_chars", True))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self.files = [vocab_txt] + [directory / f for f in TOKENIZER_CONFIG_FILES if (directory / f).exists()]
        self._tok = tok
        self.pair_separators = pair_separators_of_class(directory)
        # max id + 1, not the number of distinct tokens: a vocab.txt with a repeated line leaves a gap.
        super().__init__(tok.token_to_id, max(tok.get_vocab().values()) + 1, directory, named)

    def _encode_batch(self, texts):
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]


def special_tokens_named_in(directory: Path) -> dict:
    """Role -> token from tokenizer_config.json, then special_tokens_map.json (values may be
    {"content": ...} objects)."""
    named = {}
    for source in (read_json(directory / "special_tokens_map.json"), read_tokenizer_config(directory)):
        for role in SPECIAL_TOKEN_NAMES:
            value = named_token(source, role, None)
            if value is not None:
                named[role] = value
    return named


def tokenizer_class_of(directory: Path) -> str | None:
    """transformers' tokenizer class for these files ("Fast" stripped): tokenizer_config.json's
    tokenizer_class, else the one AutoTokenizer derives from config.json's model_type."""
    name = read_tokenizer_config(directory).get("tokenizer_class")
    if not isinstance(name, str):
        name = TOKENIZER_CLASS_OF_MODEL_TYPE.get(read_json(directory / "config.json").get("model_type"))
    return name.removesuffix("Fast") if name else None


def pair_separators_of_class(directory: Path) -> int | None:
    return PAIR_SEPARATORS_OF_CLASS.get(tokenizer_class_of(directory))


def pair_separators_of_post_processor(post_processor) -> int | None:
    """Separators between the two texts of a pair as the post-processor frames it."""
    if not post_processor:
        return None
    kind = post_processor.get("type")
    if kind == "BertProcessing":
        return 1
    if kind == "RobertaProcessing":
        return 2
    if kind == "TemplateProcessing":
        items = post_processor.get("pair", [])
        kinds = ["A" if "Sequence" in i and i["Sequence"]["id"] == "A" else
                 "B" if "Sequence" in i else "special" for i in items]
        if "A" in kinds and "B" in kinds and kinds.index("A") < kinds.index("B"):
            return kinds[kinds.index("A"):kinds.index("B")].count("special") or None
    if kind == "Sequence":
        for inner in post_processor.get("processors", []):
            found = pair_separators_of_post_processor(inner)
            if found:
                return found
    return None


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


def load_sentencepiece(model_file: Path):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    try:
        sp.Load(str(model_file))
    except (OSError, RuntimeError) as e:
        raise UserError(f"{model_file}: cannot read SentencePiece model ({e})") from None
    return sp


# SentencePiece normalizers (trainer's normalization_rule_name) whose charsmap rewrites characters one by one:
# NFKC composes a character with the marks after it, never with a following space.
LOCAL_SENTENCEPIECE_NORMALIZERS = {"nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity"}


def sentencepiece_words_end_at_spaces(proto) -> bool:
    """Whether a SentencePiece model's words end at spaces (Tokenizer.words_end_at_spaces). Spaces become "▁"
    before pieces are chosen; when no piece holds a "▁" past its first character, nor a raw space (user-defined
    symbols are matched in the raw text), no piece of the whole text crosses a cut before a space, so unigram's
    Viterbi and BPE's merges choose the pieces before the cut as they do for the prefix alone.
    remove_extra_whitespaces may be either: on, whitespace that ends the prefix (a tab, a newline) is stripped
    from it and, in the whole text, folded into the "▁" that begins the next word; off, each "▁" begins a
    piece in both."""
    trainer, normalizer = proto.trainer_spec, proto.normalizer_spec
    return (trainer.split_by_whitespace and not trainer.treat_whitespace_as_suffix
            and normalizer.name in LOCAL_SENTENCEPIECE_NORMALIZERS
            and not any(" " in p.piece or "\u2581" in p.piece[1:] for p in proto.pieces))


class SentencePieceTokenizer(Tokenizer):
    """KoBERT-style: `spiece.model` (any *.model), optionally a `vocab.txt` that fixes piece ids."""

    def __init__(self, directory: Path, model_file: Path):
        self._sp = load_sentencepiece(model_file)
        self.words_end_at_spaces = sentencepiece_words_end_at_spaces(processor_proto(self._sp))
        self.files = [model_file] + [directory / f for f in TOKENIZER_CONFIG_FILES if (directory / f).exists()]
        named = special_tokens_named_in(directory)
        vocab_txt = directory / "vocab.txt"
        if vocab_txt.exists():
            # monologg-style KoBERT: pieces are looked up in vocab.txt, whose order defines the ids.
            # One token per "\n"-ended line; splitlines() would also break at U+0085/U+2028 inside tokens.
            tokens = [t.removesuffix("\r") for t in vocab_txt.read_text(encoding="utf-8").rstrip("\n").split("\n")]
            self._vocab = {t: i for i, t in enumerate(tokens)}
            self.files.append(vocab_txt)
            super().__init__(self._vocab.get, len(tokens), directory, named)
        else:
            # skt/kobert-base-v1: the SentencePiece model's own ids are the embedding rows.
            self._vocab = None
            super().__init__(self._piece_id, self._sp.GetPieceSize(), directory, named)

    def _piece_id(self, piece: str):
        # PieceToId answers unk_id for unknown pieces; tell that apart from the unk piece itself.
        i = self._sp.PieceToId(piece)
        return i if i != self._sp.unk_id() or piece == self._sp.IdToPiece(i) else None

    def _encode_batch(self, texts):
        if self._vocab is None:
            return self._sp.Encode(texts)
        unk = self.unk_id
        return [[self._vocab.get(p, unk) for p in pieces] for pieces in self._sp.Encode(texts, out_type=str)]


def xlmr_sentencepiece_tokenizer(directory: Path, model_file: Path) -> TokenizerJson:
    """XLM-R's sentencepiece.bpe.model without a tokenizer.json, converted as transformers converts it
    (so AutoTokenizer and the checkpoint's own tokenizer.json give these ids): fairseq's numbering
    (<s> 0, <pad> 1, </s> 2, <unk> 3, SentencePiece piece i at i + 1 from i = 3, <mask> last), the model's
    Precompiled normalizer, whitespace split + Metaspace, a `tokenizers` Unigram over the same scores.
    The `sentencepiece` library itself breaks ties between equal-score segmentations differently."""
    from tokenizers import AddedToken, Tokenizer as HFTokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    proto = sentencepiece_proto(model_file)
    config = read_tokenizer_config(directory)
    names = {role: named_token(config, role, default) for role, default in
             (("bos", "<s>"), ("pad", "<pad>"), ("eos", "</s>"), ("unk", "<unk>"), ("mask", "<mask>"))}
    vocab = ([(names[r], 0.0) for r in ("bos", "pad", "eos", "unk")]
             + [(p.piece, p.score) for p in proto.pieces[3:]] + [(names["mask"], 0.0)])
    tok = HFTokenizer(Unigram(vocab, unk_id=3, byte_fallback=False))
    if proto.normalizer_spec.precompiled_charsmap:
        tok.normalizer = normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap)
    prepend = "always" if config.get("add_prefix_space", True) else "never"
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=prepend)])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme=prepend)
    tok.add_special_tokens([AddedToken(names[r], special=True, normalized=False) for r in names])
    bos, eos = names["bos"], names["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, 0), (eos, 2)])
    return TokenizerJson(directory, tok.to_str())


def deberta_sentencepiece_tokenizer(directory: Path, model_file: Path) -> TokenizerJson:
    """DeBERTa-v2/v3's spm.model without a tokenizer.json, as transformers 5's DebertaV2Tokenizer builds it
    (so AutoTokenizer, and the tokenizer.json it saves, give these ids): the model's own numbering ([PAD] 0,
    [CLS] 1, [SEP] 2, [UNK] 3 in v3), [MASK] after the pieces where the model lacks it, a `tokenizers`
    Unigram over the same scores. Its normalizer is transformers' (whitespace runs to one space, NFC, no
    trailing space), not the model's NFKC charsmap, which transformers 5 no longer applies: the
    `sentencepiece` library itself gives other ids for some texts (Korean compatibility jamo, full-width forms)."""
    from tokenizers import AddedToken, Regex, Tokenizer as HFTokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    proto = sentencepiece_proto(model_file)
    config = read_tokenizer_config(directory)
    names = {role: named_token(config, role, default) for role, default in
             (("bos", "[CLS]"), ("eos", "[SEP]"), ("unk", "[UNK]"), ("sep", "[SEP]"), ("pad", "[PAD]"),
              ("cls", "[CLS]"), ("mask", "[MASK]"))}
    vocab = [(p.piece, p.score) for p in proto.pieces]
    unk_id = vocab.index((names["unk"], 0.0)) if (names["unk"], 0.0) in vocab else proto.trainer_spec.unk_id
    tok = HFTokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        ([normalizers.Lowercase()] if config.get("do_lower_case", False) else [])
        + [normalizers.Replace(Regex(r"\s{2,}|[\n\r\t]"), " "), normalizers.NFC(),
           normalizers.Strip(left=False, right=True)])
    prepend = "always" if config.get("add_prefix_space", True) else "first"
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        ([pre_tokenizers.Punctuation(behavior="isolated")] if config.get("split_by_punct", False) else [])
        + [pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=prepend)])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme=prepend)
    # SentencePiece's control (type 3, special) and user-defined (type 4) pieces are whole tokens, as in transformers
    tok.add_tokens([AddedToken(p.piece, normalized=False, special=p.type == 3) for p in proto.pieces if p.type in (3, 4)])
    tok.add_special_tokens([AddedToken(name, special=True, normalized=False) for name in dict.fromkeys(names.values())])
    cls, sep = names["cls"], names["sep"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return TokenizerJson(directory, tok.to_str())


def sentencepiece_proto(model_file: Path):
    # load_sentencepiece: its one-line error for a file that is not a SentencePiece model
    return processor_proto(load_sentencepiece(model_file))


def processor_proto(sp):
    """A loaded SentencePieceProcessor's model as its protobuf, without reading the file again."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(sp.serialized_model_proto())
    return proto


def named_token(config: dict, role: str, default: str | None) -> str | None:
    """The token a config names for a role ("<role>_token": a string or an {"content": ...} object)."""
    value = config.get(f"{role}_token")
    value = value.get("content") if isinstance(value, dict) else value
    return value if isinstance(value, str) else default


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
    """Picks the tokenizer from the files present: tokenizer.json > SentencePiece model > vocab.txt; a
    SentencePiece model of an XLM-R tokenizer class (or model_type) gets fairseq's numbering."""
    directory = Path(directory)
    if (directory / "tokenizer.json").exists():
        return TokenizerJson(directory)
    sp_models = sorted(directory.glob("*.model"))
    if sp_models:
        preferred = directory / "spiece.model"
        model_file = preferred if preferred.exists() else sp_models[0]
        kind = tokenizer_class_of(directory)
        if kind == "XLMRobertaTokenizer":
            return xlmr_sentencepiece_tokenizer(directory, model_file)
        if kind == "DebertaV2Tokenizer":
            return deberta_sentencepiece_tokenizer(directory, model_file)
        if kind == "CamembertTokenizer":  # fairseq's numbering with <s>NOTUSED and other extras of its own
            raise UserError(f"{model_file}: CamemBERT's SentencePiece numbering is not supported without its "
                            "tokenizer.json: put the checkpoint's tokenizer.json beside it")
        return SentencePieceTokenizer(directory, model_file)
    if (directory / "vocab.txt").exists():
        return WordPieceTokenizer(directory)
    raise UserError(f"{directory}: no tokenizer files (tokenizer.json, vocab.txt or spiece.model)")
