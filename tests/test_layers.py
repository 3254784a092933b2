"""Imports only point down, floor by floor, and no module imports itself back through others:

    common/      torch-free ground floor: errors, config resolvers and schema, command-line checks
    data/        readers, tokenizers, transform, datasets
    model/       encoders, classifier, checkpoints, exports
    inference/   device and precision, batches, decisions, the predictors
    evaluation/  metrics, analysis, calibration, thresholds, prediction files, baselines
    training/    the loop and everything it needs (objective, optimizer, resume, DDP, run records), MLM
    research/    comparing runs and sweeps
    entry scripts (train.py, evaluate.py, predict.py) and engine/ (old module names, aliases) on top
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS = ["common", "data", "model", "inference", "evaluation", "training", "research"]
OURS = set(FLOORS) | {"engine"}


def imported_modules(path: Path) -> set[str]:
    """Our modules `path` imports, at module level or inside functions alike ('pkg.module' names)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from pkg import module` names a module; `from pkg.module import name` names pkg.module
            names |= {f"{node.module}.{alias.name}" if (ROOT / node.module.replace(".", "/") / f"{alias.name}.py")
                      .is_file() else node.module for alias in node.names}
    return {name for name in names if name.split(".")[0] in OURS}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imported_packages(package: str) -> dict[str, set[str]]:
    """file -> our top-level packages it imports."""
    return {str(path.relative_to(ROOT)): {name.split(".")[0] for name in imported_modules(path)}
            for path in sorted((ROOT / package).rglob("*.py"))}


@pytest.mark.parametrize("floor", range(len(FLOORS)), ids=FLOORS)
def test_package_imports_only_the_floors_below(floor):
    package, allowed = FLOORS[floor], set(FLOORS[:floor + 1])
    wrong = {f: sorted(names - allowed) for f, names in imported_packages(package).items() if names - allowed}
    assert not wrong, f"{package}/ must import only {sorted(allowed)}: {wrong}"


def test_no_module_imports_itself_back():
    graph = {module_name(path): imported_modules(path)
             for package in OURS for path in (ROOT / package).rglob("*.py")}
    cycles = []

    def visit(module, trail):
        for target in sorted(graph.get(module, ())):
            if target in trail:
                cycles.append(trail[trail.index(target):] + [target])
            elif target not in done:
                visit(target, trail + [target])
        done.add(module)

    done = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_walker_sees_imports():
    # The checks above would pass vacuously if the walker found nothing.
    assert "common" in imported_packages("data")["data/tokenizer.py"]
    assert "data" in imported_packages("training")["training/build.py"]
    assert "inference.batches" in imported_modules(ROOT / "inference" / "onnx_predictor.py")
    assert "model.export" in imported_modules(ROOT / "inference" / "onnx_predictor.py")  # inside a function
