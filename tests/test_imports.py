"""The package's imports follow the one-way flow (STYLE.md): a module imports only from its own
layer or below, never from the package root, so io never depends on what is built on it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "nextx"
LAYERS = {  # lower imports nothing higher
    "_version": 0, "_lazy": 0, "errors": 0, "threads": 0, "devices": 0,
    "io": 1,
    "lowrank": 2,
    "trajectory": 3,
    "predictors": 4, "measure": 4, "scoring": 4,
    "backtesting": 5, "extrapolation": 5, "fitting": 5, "inspection": 5, "plot": 5,
    "choose": 6,
    "train": 7,
    "cli": 8,
}
# Known and tracked (README "Noticed"): Run.deltas builds lowrank's FactorStack inside io.
EXCEPTIONS = {("io/run.py", "nextx.lowrank")}


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "nextx":
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == "nextx")


def test_imports_follow_the_layers():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.name == "__init__.py" and relative.parent == Path("."):
            continue  # the package root re-exports the public API
        source = LAYERS[relative.parts[0].removesuffix(".py")]
        for module in _imports(path):
            parts = module.split(".")
            if len(parts) == 1:
                violations.append(f"{relative}: imports the package root")
                continue
            target = LAYERS[parts[1]]
            if target > source and (str(relative), module) not in EXCEPTIONS:
                violations.append(f"{relative}: imports {module} (layer {target} above {source})")
    assert violations == []


def test_every_module_has_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert tops <= set(LAYERS)
