"""README.ko.md cannot drift from README.md: every command of its code blocks is a command of README.md's
(comments aside, which are in Korean), README.md's first lines link it, and every figure it quotes is
one README.md states."""
import re

from common.config import PROJECT_ROOT

ENGLISH, KOREAN = ((PROJECT_ROOT / name).read_text(encoding="utf-8") for name in ("README.md", "README.ko.md"))
FENCE = re.compile(r"^```(?:bash)?\n(.*?)^```", re.M | re.S)


def commands(markdown: str) -> list[str]:
    """Shell lines of the fenced code blocks, without their trailing `# comment`."""
    lines = [line for block in FENCE.findall(markdown) for line in block.splitlines()]
    return [re.sub(r"\s+#\s.*$", "", line).rstrip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_korean_readme_command_is_an_english_readme_command():
    korean = commands(KOREAN)
    assert len(korean) >= 20
    missing = [command for command in korean if command not in set(commands(ENGLISH))]
    assert not missing, missing


def test_both_readmes_open_with_the_same_set_up_commands_and_the_english_one_links_the_korean_one():
    english_first, korean_first = (commands(FENCE.search(text).group(0)) for text in (ENGLISH, KOREAN))
    assert english_first == korean_first == ["./setup.sh && .venv/bin/python train.py",
                                             "./setup.sh dev && .venv/bin/python -m pytest"]
    after_block = ENGLISH[FENCE.search(ENGLISH).end():].lstrip().splitlines()[0]
    assert "(README.ko.md)" in after_block


def test_every_figure_of_the_korean_readme_is_stated_in_the_english_one():
    figures = set(re.findall(r"\d+\.\d+|\d{1,3}(?:,\d{3})+", KOREAN))
    assert {"0.5238", "0.5150", "0.5046", "0.4606", "0.4710", "0.1565", "38,594"} <= figures
    assert not [figure for figure in figures if figure not in ENGLISH]


def test_the_readme_spreadsheet_command_reads_the_tutorials_file_into_all_jsonls_split(shared_datasets):
    """The one command both READMEs give for 한국어_단발성_대화_데이터셋.xlsx, composed as train.py composes
    it: the same rows in every split as data=korean_emotion's all.jsonl (texts differ only in the
    leading/trailing spaces all.jsonl stripped)."""
    import shlex

    from common.cli import composed
    from common.overrides import literal_overrides
    from data.build import read_splits

    [line] = [c for c in commands(ENGLISH) if "한국어_단발성_대화_데이터셋.xlsx" in c and c.startswith("python train.py")]
    assert line in commands(KOREAN)
    overrides = shlex.split(line)[2:]
    spreadsheet = composed("config", literal_overrides("config", overrides, multirun=False)).data
    jsonl = composed("config", ["data=korean_emotion"]).data
    assert spreadsheet.train.endswith("korean_emotion/한국어_단발성_대화_데이터셋.xlsx")
    from_xlsx, from_jsonl = read_splits(spreadsheet), read_splits(jsonl)
    for split in ("train", "validation", "test"):
        assert [t.strip() for t in from_xlsx[split].texts] == from_jsonl[split].texts
        assert from_xlsx[split].labels == from_jsonl[split].labels
