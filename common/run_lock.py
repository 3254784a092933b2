"""One writer per run directory. Two train.py started into the same directory would interleave
checkpoints and delete each other's temporary files; the second is refused in one line instead.

The lock is a file holding the writer's pid and host, created exclusively. It is removed when the run
ends, however it ends (the context manager's exit; a SIGKILL cannot be caught, so a lock whose pid no
longer runs on this host is stale and taken over)."""
import contextlib
import json
import os
import socket
from pathlib import Path

from common.errors import UserError
from common.output_paths import check_output_dir

LOCK = ".run.lock"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def holder(lock: Path) -> dict | None:
    """The running writer named by `lock`, or None when the lock is stale (or vanished meanwhile)."""
    try:
        owner = json.loads(lock.read_text())
    except (FileNotFoundError, json.JSONDecodeError, OSError):  # half-written by a writer killed at once
        return None
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return None
    if owner.get("host") != socket.gethostname():  # cannot be probed from here: assume it runs
        return owner
    return owner if process_alive(owner["pid"]) and owner["pid"] != os.getpid() else None


def busy(run_dir, owner: dict) -> str:
    return (f"{run_dir}: another run (pid {owner['pid']} on {owner['host']}) is writing into this directory; "
            f"wait for it, or remove {Path(run_dir) / LOCK} if it is gone")


def acquire(run_dir: Path) -> Path:
    lock = Path(run_dir) / LOCK
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
    for _ in range(3):  # a stale lock removed by us, or by another starter at the same moment
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = holder(lock)
            if owner is not None:
                raise UserError(busy(run_dir, owner)) from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        except OSError as e:
            raise UserError(f"{run_dir}: cannot create {LOCK} ({e.strerror}); is the run directory writable?") \
                from None
        with os.fdopen(fd, "w") as f:
            f.write(record)
        return lock
    raise UserError(f"{run_dir}: could not take {lock}: other runs keep starting into this directory")


@contextlib.contextmanager
def run_directory_lock(run_dir: Path, enabled: bool = True):
    """Held for the block; `enabled` false (data-parallel ranks other than 0) takes nothing."""
    lock = acquire(run_dir) if enabled else None
    try:
        yield
    finally:
        if lock is not None:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()


def check_run_directory_argument(argv: list[str]):
    """`hydra.run.dir=DIR` on the command line, checked before Hydra creates DIR and writes `.hydra/` into it:
    a path that cannot be a directory, or a directory another run is writing (its record would be
    overwritten before train.py could refuse), is one line. The lock itself is taken later, by train()."""
    if any(arg in ("-m", "--multirun") for arg in argv):  # each job gets its own directory
        return
    for arg in argv:
        key, given, value = arg.partition("=")
        if key == "hydra.run.dir" and given and value and "${" not in value:
            check_output_dir(value, key)
            owner = holder(Path(value) / LOCK)
            if owner is not None:
                raise UserError(busy(value, owner))
