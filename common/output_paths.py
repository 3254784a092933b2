"""Output paths checked before the slow work, and result files written whole or not at all.

A path that cannot be written (a directory where a file is wanted, a file where a directory is wanted,
a missing parent, no write permission) is one line naming the key, before anything is computed. A result
file goes to a hidden temporary sibling first and is renamed into place: a reader sees the previous file
or the new one, never half of one; on any failure (disk full included, whatever the writer raises) the
temporary file is removed and the failure is one line.
"""
import contextlib
import os
from pathlib import Path

from common.errors import UserError


def check_output_file(path, key: str) -> Path:
    """`key=path` will be written as a file: its parent must be a writable directory, and the path
    must not be a directory (an existing file is replaced)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{key}={path}: is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise UserError(f"{key}={path}: the parent directory {parent} {what}")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{key}={path}: not writable (permission denied)")
    return path


def check_output_dir(path, key: str) -> Path:
    """`key=path` will be a directory of results: an existing one must be writable; a missing one is
    created later under its nearest existing ancestor, which must be a writable directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{key}={path}: is a file; give a directory")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{key}={path}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{key}={path}: {ancestor} is not writable (permission denied)")
    return path


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path beside `path`; when the block ends normally it is renamed to `path`.
    Whatever the block raises (OSError, safetensors' or numpy's own errors, Ctrl-C), the temporary file
    is removed; a failed write becomes one line."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")  # suffix kept: np.savez appends .npz
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(e, (KeyboardInterrupt, SystemExit, UserError)):
            raise
        raise UserError(f"cannot write {path} ({describe_write_error(e)}); nothing was written there") from None


def write_text_atomic(path, text: str):
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def describe_write_error(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def save_figure(fig, path, dpi: int):
    """A matplotlib Figure as an image file (its format from the suffix), whole or not at all."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".") or None)
