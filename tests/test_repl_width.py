"""predict.py's prompt pads label names by terminal columns, so the probability bars line up with Korean
labels of different lengths and Korean mixed with English."""
import re
import sys
import unicodedata

import numpy as np
import pexpect

from common.config import PROJECT_ROOT
from common.display_width import display_width, pad_to_width
from predict import print_bars
from tests.test_cli_values import korean_checkpoint  # noqa: F401  (fixture: labels 기쁨, 불평/불만, joy)

LABELS = ["기쁨", "불평/불만", "joy", "neutral 중립", "슬픔"]


def test_display_width_counts_terminal_columns():
    assert display_width("joy") == 3
    assert display_width("기쁨") == 4 and display_width("불평/불만") == 9
    assert display_width("neutral 중립") == 12
    assert display_width(unicodedata.normalize("NFD", "기쁨")) == 4  # decomposed Hangul: vowels/finals take none
    assert display_width("e\u0301") == 1 and display_width("日本") == 4 and display_width("😀") == 2
    assert pad_to_width("기쁨", 9) == "기쁨     " and pad_to_width("toolong", 3) == "toolong"


def test_bars_start_in_the_same_column_for_korean_and_mixed_labels(capsys):
    probs = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    print_bars(LABELS, probs, range(len(LABELS)), max(display_width(name) for name in LABELS))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(LABELS)
    percent_columns = {display_width(line[:line.index("%")]) for line in lines}
    assert len(percent_columns) == 1, lines
    assert lines[0].startswith("  기쁨" + " " * 8 + "  50.00%")


def test_the_prompt_lines_up_in_a_terminal(korean_checkpoint):  # noqa: F811
    child = pexpect.spawn(sys.executable, ["predict.py", f"checkpoint={korean_checkpoint}"], cwd=str(PROJECT_ROOT),
                          encoding="utf-8", timeout=60)
    child.expect("> ")
    child.sendline("정말 행복한 하루였어요")
    child.expect("> ")
    bars = [line for line in child.before.splitlines() if "%" in line and line.startswith("  ")]
    child.sendline("quit")
    child.expect(pexpect.EOF)
    assert len(bars) == 3, child.before
    assert {name for line in bars for name in ["기쁨", "불평/불만", "joy"] if line.strip().startswith(name)} == {
        "기쁨", "불평/불만", "joy"}
    assert len({display_width(re.split(r"\d+\.\d\d%", line)[0]) for line in bars}) == 1, bars
