"""Vocabulary trimming: keep the pieces a training corpus uses, plus a safety set, and renumber them.

Most of a multilingual vocabulary is rows one corpus never touches: multilingual-e5-small's 250k pieces
are 96M of its 117.5M parameters, and full AdamW keeps two more copies of them. A Unigram tokenizer.json
restricted to the pieces the training texts use, plus every single-character piece, tokenizes every
training text exactly as before (its best segmentation uses only kept pieces, so it is still the best
one), while an unseen text whose best segmentation needs a dropped piece is cut into kept pieces (down to
single characters) instead of failing; a character that no kept piece spells is <unk>, as before.

Only Unigram vocabularies are trimmed (multilingual-e5, XLM-R's tokenizer.json or its converted
sentencepiece.bpe.model). A BPE vocabulary cannot be cut without its merges, which name pieces, changing
how the kept texts tokenize; WordPiece and KoBERT-style SentencePiece vocabularies are refused as well
(common/checks.py refuses all of these before any data is read). That the training texts keep their ids
is checked, not assumed: any difference is refused in one line.
"""
import json

from common.errors import UserError
from data.tokenizer import Tokenizer, TokenizerJson


def trimmed_tokenizer(tokenizer: Tokenizer, texts: list[str]) -> tuple[TokenizerJson, list[int]]:
    """The restricted tokenizer and the kept old ids in new-id order (the embedding rows to keep)."""
    spec = json.loads(tokenizer.spec_text) if isinstance(tokenizer, TokenizerJson) else {}
    model = spec.get("model", {})
    if model.get("type") != "Unigram":
        raise UserError(f"model.trim_vocab=true needs a Unigram tokenizer.json (multilingual-e5, XLM-R); "
                        f"{getattr(tokenizer, 'directory', 'this tokenizer')} has "
                        f"{model.get('type') or type(tokenizer).__name__}: set model.trim_vocab=false")
    vocab = model["vocab"]
    full_ids = tokenizer.encode_batch(texts)
    used = {i for ids in full_ids for i in ids}
    specials = {t["id"] for t in spec.get("added_tokens", [])} | {
        tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id, tokenizer.unk_id}
    if model.get("unk_id") is not None:  # null in a Unigram without an unknown piece
        specials.add(model["unk_id"])
    single_characters = {i for i, (piece, _) in enumerate(vocab) if len(piece) == 1}
    kept = sorted(used | specials | single_characters)
    new_id = {old: new for new, old in enumerate(kept)}
    model["vocab"] = [vocab[i] for i in kept]
    if model.get("unk_id") is not None:
        model["unk_id"] = new_id[model["unk_id"]]
    for token in spec.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    renumber_post_processor(spec.get("post_processor"), new_id)
    if spec.get("padding"):
        spec["padding"]["pad_id"] = new_id[spec["padding"]["pad_id"]]
    trimmed = TokenizerJson(tokenizer.directory, json.dumps(spec, ensure_ascii=False, indent=1))
    for text, ids, trimmed_ids in zip(texts, full_ids, trimmed.encode_batch(texts)):
        if [kept[i] for i in trimmed_ids] != ids:
            raise UserError(f"model.trim_vocab=true: the trimmed vocabulary of {tokenizer.directory} would tokenize "
                            f"the training text {text[:60]!r} differently: set model.trim_vocab=false")
    return trimmed, kept


def renumber_post_processor(post_processor, new_id: dict):
    if not post_processor:
        return
    kind = post_processor.get("type")
    if kind in ("BertProcessing", "RobertaProcessing"):
        for role in ("cls", "sep"):
            post_processor[role][1] = new_id[post_processor[role][1]]
    elif kind == "TemplateProcessing":
        for special in post_processor.get("special_tokens", {}).values():
            special["ids"] = [new_id[i] for i in special["ids"]]
    elif kind == "Sequence":
        for inner in post_processor.get("processors", []):
            renumber_post_processor(inner, new_id)


def training_tokenizer(model_cfg, data_cfg, train=None) -> tuple[Tokenizer, list[int] | None]:
    """The encoder's tokenizer, trimmed to the training split when model.trim_vocab is set; with the
    embedding rows to keep (None: all). `train`: that split's Examples, if already read."""
    from data.build import read_split
    from data.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(model_cfg.path)
    if not model_cfg.get("trim_vocab"):
        return tokenizer, None
    train = read_split(data_cfg, "train") if train is None else train
    prefix = data_cfg.get("text_prefix") or ""
    trimmed, kept = trimmed_tokenizer(tokenizer, [prefix + t for t in train.texts] + list(train.texts_b or []))
    print(f"vocabulary trimmed to the training split: {len(kept):,} of {tokenizer.vocab_size:,} pieces kept "
          "(every single-character piece included)")
    return trimmed, kept
