"""Several paths in one command-line value: `a,b,c` or a quoted glob (`'runs/*/checkpoints/best'`), as
research.compare, research.ensemble and the checkpoint= of predict.py / evaluate.py take them."""
import glob
from pathlib import Path

from common.errors import UserError


def listed_paths(spec: str) -> list[Path]:
    """'a,b' -> [a, b]; a part with glob characters -> what it matches, sorted. A value that is itself an
    existing path is that one path, commas or brackets in its name included."""
    if Path(spec).exists():
        return [Path(spec)]
    paths = []
    for part in filter(None, spec.split(",")):
        if glob.has_magic(part):
            matches = sorted(glob.glob(part))
            if not matches:
                raise UserError(f"{part}: matches no file or directory")
            paths += [Path(m) for m in matches]
        else:
            paths.append(Path(part))
    if not paths:
        raise UserError(f"{spec!r}: names no path")
    return paths
