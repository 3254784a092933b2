"""Imports only point down: common/ (torch-free ground floor) <- data/, model/ <- engine/ <- entry scripts."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"common", "data", "model", "engine"}


def imported_packages(package: str) -> dict[str, set[str]]:
    """file -> our top-level packages it imports (module level or inside functions alike)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names & OURS
    return found


@pytest.mark.parametrize("package, allowed", [
    ("common", {"common"}),
    ("data", {"common", "data"}),
    ("model", {"common", "data", "model"}),
])
def test_package_imports_only_the_layers_below(package, allowed):
    wrong = {f: sorted(names - allowed) for f, names in imported_packages(package).items() if names - allowed}
    assert not wrong, f"{package}/ must import only {sorted(allowed)}: {wrong}"


def test_walker_sees_imports():
    # The check above would pass vacuously if the walker found nothing.
    assert "common" in imported_packages("data")["data/tokenizer.py"]
    assert "data" in imported_packages("engine")["engine/build.py"]
