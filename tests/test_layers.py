"""The package's layers, bottom to top: core, data, models, train, results, search
(`raydream.tuning`), then the command-line modules. A module imports only from its own layer
and the layers below it; every import statement counts, those inside functions too."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "raydream"
LAYERS = ["core", "data", "models", "train", "results", "tuning"]
# The command lines on top of everything: `python -m raydream.X`, and the package's own API.
TOP = len(LAYERS)
# Imports that no module of these layers may make, lazily or not (the mission's rule: models,
# encoders and metrics run anywhere, without a Ray instance).
NO_RAY = {"core", "data", "models"}


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts[0] != "raydream" or len(parts) == 1:
        return TOP  # the package root: its API is the top
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else TOP


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, module imported) for every import statement in a file, relative ones resolved."""
    out = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from raydream import storage` imports the submodule raydream.storage
            out += [(node.lineno, f"{base}.{a.name}" if base == "raydream" else base) for a in node.names]
    return out


def test_the_layers_are_the_packages_and_nothing_is_left_loose():
    loose = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert loose == ["evaluate", "explain", "predict", "prepare", "report", "tune"]  # the command lines only
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc and "Layer" in doc.split("\n")[0], f"raydream.{layer} says which layer it is"


def test_no_module_imports_a_layer_above_its_own():
    wrong = []
    for module, path in modules():
        own = layer_of(module)
        for line, imported in imports(path, module):
            if imported.startswith("raydream.__"):  # the package's version
                continue
            if imported.startswith("raydream") and layer_of(imported) > own:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({LAYERS[own] if own < TOP else 'top'}) "
                             f"imports {imported}")
            top = imported.split(".")[0]
            if module.split(".")[1:2] and module.split(".")[1] in NO_RAY and top == "ray":
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports Ray")
    assert not wrong, "\n".join(wrong)


def test_the_walk_sees_an_upward_import(tmp_path):
    # The check itself: a data module that imports the search layer, lazily, is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from raydream.tuning.plan import Search\n    import ray\n")
    assert [(2, "raydream.tuning.plan"), (3, "ray")] == imports(bad, "raydream.data.bad")
    assert layer_of("raydream.tuning.plan") > layer_of("raydream.data.bad")


@pytest.mark.parametrize("module, absent", [
    ("raydream.results.table", ["torch", "ray"]),
    ("raydream.models", ["ray"]),
    ("raydream.core.metrics", ["ray", "torch", "scipy", "sklearn"]),
    ("raydream", ["ray", "torch", "pandas"]),
    ("raydream.train.channel", ["ray", "torch"]),  # the link actor's process, one per trial actor
])
def test_what_a_module_does_not_load(module, absent):
    code = f"import sys, {module}; print(' '.join(m for m in {absent!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"importing {module} loaded {done.stdout.strip()}"
