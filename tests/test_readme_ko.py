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
