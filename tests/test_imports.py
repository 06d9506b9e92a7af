"""The package's imports follow the one-way flow (STYLE.md): a module imports only from its own
layer or below, never from the package root, so io never depends on what is built on it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "nextx"
LAYERS = {  # lower imports nothing higher
    "_version": 0, "_lazy": 0, "errors": 0, "threads": 0, "devices": 0, "progress": 0,
    "io": 1,
    "lowrank": 2,
    "trajectory": 3,
    "predictors": 4, "scoring": 4,
    "backtesting": 5, "extrapolation": 5, "fitting": 5, "inspection": 5,
    "choose": 6,
    "jump": 7,
    "train": 8,
    "studies": 9,
    "cli": 10,
}
TRAIN_LAYERS = {  # inside nextx/train: the tasks and evaluation at the bottom, DGO on top
    "tasks": 0, "tokenizer": 0, "quiet": 0, "evaluate": 0,
    "experiences": 1, "scorer": 1, "runs": 1, "progress": 1,
    "tiny_model": 2, "settings": 2, "config": 2, "pretrained": 2,
    "callback": 3, "reposition": 3, "clock": 3,
    "grpo": 4,
    "dgo": 5,
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


def test_train_imports_follow_its_rooms():
    """Inside nextx/train too: no module imports one of a higher room (the tiny model never imports DGO)."""
    violations = []
    for path in sorted((PACKAGE / "train").rglob("*.py")):
        relative = path.relative_to(PACKAGE / "train")
        if relative == Path("__init__.py"):
            continue  # lazy re-exports
        source = TRAIN_LAYERS[relative.parts[0].removesuffix(".py")]
        for module in _imports(path):
            parts = module.split(".")
            if parts[:2] == ["nextx", "train"] and len(parts) > 2 and TRAIN_LAYERS[parts[2]] > source:
                violations.append(f"train/{relative}: imports {module} (room {TRAIN_LAYERS[parts[2]]} above {source})")
    assert violations == []


def test_every_module_has_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert tops <= set(LAYERS)
    rooms = {p.relative_to(PACKAGE / "train").parts[0].removesuffix(".py") for p in (PACKAGE / "train").rglob("*.py")}
    assert rooms - {"__init__", "assets"} <= set(TRAIN_LAYERS)
