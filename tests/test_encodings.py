"""Korean files as Windows and Excel write them: data.encoding reads CP949 / EUC-KR and UTF-16 (BOM) in
every text format, and a strict UTF-8 read of such a file says which setting reads it, instead of
advising a repair that would turn every Hangul syllable into U+FFFD."""
import codecs
import json

import pytest

from common.cli import composed
from common.errors import UserError
from data.build import read_file
from data.readers import read_examples
from tests.test_cli_values import composed_value

ROWS = [("정말 행복한 하루였어요", "행복"), ("왜 이렇게 무섭지, 'really'?", "공포"), ("그냥 그래요", "중립")]


def korean_file(directory, fmt: str, encoding: str):
    """The ROWS as a `fmt` file in `encoding` (JSONL with literal Hangul, not \\u escapes)."""
    if fmt == "jsonl":
        text = "".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n" for t, l in ROWS)
    elif fmt == "txt":
        text = "".join(f"{t};{l}\n" for t, l in ROWS)
    else:
        sep = "," if fmt == "csv" else "\t"
        text = f"문장{sep}감정\r\n" + "".join(f'"{t}"{sep}{l}\r\n' for t, l in ROWS)  # as Excel writes it
    path = directory / f"{encoding}.{fmt}"
    path.write_bytes(text.encode(encoding))
    return path


def columns(fmt: str) -> dict:
    return {"text_column": "문장", "label_column": "감정"} if fmt in ("csv", "tsv") else {}


@pytest.mark.parametrize("fmt", ["csv", "tsv", "txt", "jsonl"])
@pytest.mark.parametrize("encoding, setting", [("cp949", "cp949"), ("euc-kr", "euc-kr"), ("utf-16", "utf-16"),
                                               ("utf-8-sig", "utf-8"), ("utf-16-be", "utf-16-be")])
def test_korean_files_read_in_their_encoding(tmp_path, fmt, encoding, setting):
    ex = read_examples(korean_file(tmp_path, fmt, encoding), encoding=setting, **columns(fmt))
    assert list(zip(ex.texts, ex.labels)) == ROWS


@pytest.mark.parametrize("fmt", ["csv", "tsv", "txt", "jsonl"])
@pytest.mark.parametrize("encoding, told", [
    ("cp949", "decodes as CP949 / EUC-KR (Korean Windows, Excel's CSV), line 1 reading"),
    ("utf-16", "decodes as UTF-16 with a byte order mark (Excel's Unicode text), line 1 reading"),
])
def test_a_strict_utf8_read_names_the_encoding_that_reads_the_file(tmp_path, fmt, encoding, told):
    path = korean_file(tmp_path, fmt, encoding)
    with pytest.raises(UserError) as refused:
        read_examples(path, **columns(fmt))
    message = str(refused.value)
    assert message.startswith(f"{path}:1: not UTF-8, but the whole file") and told in message
    assert message.endswith(f": set data.encoding={encoding}") and "decode_errors" not in message
    assert "\n" not in message and ("문장" in message or "정말" in message)  # the line, decoded as suggested


def test_bytes_no_encoding_reads_keep_the_repair_advice(tmp_path):
    (tmp_path / "d.csv").write_bytes(b"text,label\nfine,a\nbad \x8a byte,b\n")
    with pytest.raises(UserError, match=r"d.csv:3: invalid UTF-8 byte 0x8a \(set data.decode_errors=replace"):
        read_examples(tmp_path / "d.csv")
    (tmp_path / "e.csv").write_bytes("text,label\n정말,a\n".encode("cp949") + b"\x80,b\n")
    with pytest.raises(UserError, match=r"e.csv:3: byte 0x80 is not valid cp949 \(set data.encoding"):
        read_examples(tmp_path / "e.csv", encoding="cp949")
    ex = read_examples(tmp_path / "e.csv", encoding="cp949", decode_errors="replace")
    assert ex.texts == ["정말", "\ufffd"]


def test_an_unknown_or_non_text_codec_is_one_line(tmp_path, capsys):
    path = korean_file(tmp_path, "csv", "cp949")
    for name in ("klingon", "base64"):
        with pytest.raises(UserError, match=rf"^data.encoding='{name}' is not a text encoding Python knows"):
            read_examples(path, encoding=name)
        with pytest.raises(SystemExit):
            from common import checks
            from common.cli import check_overrides
            check_overrides("report", ["data=files", f"data.train={path}", f"data.encoding={name}"],
                            checks=checks.check_report)
        assert capsys.readouterr().err.startswith(f"error: data.encoding='{name}' is not a text encoding")


def test_the_encoding_is_a_config_key_read_by_the_data_builder_and_stored(tmp_path):
    path = korean_file(tmp_path, "csv", "cp949")
    cfg = composed("config", ["data=files", f"data.train={path}", "data.encoding=cp949", "data.text_column=x"])
    assert cfg.data.encoding == "cp949" and "encoding: cp949" in __import__("omegaconf").OmegaConf.to_yaml(cfg)
    cfg.data.text_column, cfg.data.label_column = "문장", "감정"
    assert list(read_file(cfg.data, path).texts) == [t for t, _ in ROWS]
    assert composed_value("config", "data.encoding=utf-8", "data.encoding") == "utf-8"
    assert codecs.lookup(composed("config", []).data.encoding).name == "utf-8"  # the default


def test_a_cp949_csv_with_korean_path_and_columns_from_the_command_line(tmp_path, tiny_model_dir):
    """One real entry script (data.report reads the data as train.py does): Korean folder and file name,
    Korean column names and data.encoding=cp949, typed without any Hydra quoting."""
    from tests.conftest import run_script

    folder = tmp_path / "한국어 데이터"
    folder.mkdir()
    rows = "".join(f'"{text} {i}",{label}\r\n' for i in range(20) for text, label in ROWS)
    (folder / "감정 분류.csv").write_bytes(f"문장,감정\r\n{rows}".encode("cp949"))
    result = run_script("-m", "data.report", "data=files", f"data.train={folder / '감정 분류.csv'}",
                        "data.text_column=문장", "data.label_column=감정", "data.encoding=cp949",
                        f"model.path={tiny_model_dir}", f"out={tmp_path / '보고서'}", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "train: examples 48" in result.stdout and "texts_repaired 0" in result.stdout
    assert "행복" in result.stdout and (tmp_path / "보고서" / "class_frequency.png").is_file()
