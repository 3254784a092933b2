"""One writer per run directory: a second run into a directory another live process writes is refused in
one line before it reads anything; the lock is released however the run ends; a lock left by a killed
process (its pid no longer runs) is taken over."""
import json
import socket
import subprocess
import sys

import pytest

from common.errors import UserError
from common.run_lock import LOCK, acquire, check_run_directory_argument, run_directory_lock
from tests.test_loop import composed
from train import train


@pytest.fixture
def other_live_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def held_by(run_dir, pid):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOCK).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))


def test_second_run_into_a_directory_being_written_is_refused(other_live_process, tiny_model_dir, tiny_data,
                                                               tmp_path):
    held_by(tmp_path, other_live_process)
    with pytest.raises(UserError, match=f"another run \\(pid {other_live_process} on .*\\) is writing into this "
                                        "directory") as refused:
        train(composed(tiny_model_dir, tiny_data), tmp_path)
    assert "\n" not in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK]  # nothing read, nothing written
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == other_live_process  # and its lock kept


def test_lock_of_a_process_that_no_longer_runs_is_taken_over(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    held_by(tmp_path, int(finished))
    with run_directory_lock(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] != int(finished)
    assert not (tmp_path / LOCK).exists()


def test_lock_is_released_when_the_run_fails(tiny_model_dir, tiny_data, tmp_path):
    with pytest.raises(UserError, match="data.train"):
        train(composed(tiny_model_dir, tiny_data, "data.train=null"), tmp_path)
    assert not (tmp_path / LOCK).exists()
    acquire(tmp_path).unlink()  # free for the next run


def test_a_directory_being_written_is_refused_before_hydra_writes_its_record(other_live_process, tmp_path):
    """train.py's __main__ checks hydra.run.dir before Hydra overwrites `.hydra/` of the run writing there."""
    held_by(tmp_path, other_live_process)
    with pytest.raises(UserError, match=f"another run \\(pid {other_live_process} "):
        check_run_directory_argument(["data=emotion", f"hydra.run.dir={tmp_path}"])
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="hydra.run.dir=.*/file/run: .*/file is a file, not a directory"):
        check_run_directory_argument([f"hydra.run.dir={tmp_path / 'file' / 'run'}"])
    check_run_directory_argument(["-m", f"hydra.run.dir={tmp_path}"])  # a sweep: each job has its own directory
