"""common/path_lists.py: several paths in one command-line value."""
import pytest

from common.errors import UserError
from common.path_lists import listed_paths


def test_commas_and_globs_name_several_paths_and_an_existing_path_is_one(tmp_path):
    for name in ("run1", "run2", "odd,name"):
        (tmp_path / name).mkdir()
    assert listed_paths(f"{tmp_path}/run2,{tmp_path}/run1") == [tmp_path / "run2", tmp_path / "run1"]
    assert listed_paths(f"{tmp_path}/run*") == [tmp_path / "run1", tmp_path / "run2"]
    assert listed_paths(f"{tmp_path}/odd,name") == [tmp_path / "odd,name"]
    with pytest.raises(UserError, match="matches no file or directory"):
        listed_paths(f"{tmp_path}/nothing*")
    with pytest.raises(UserError, match="names no path"):
        listed_paths(",")
