"""The folder layout is the architecture: each layer imports only the layers below it.

    storage/   plain file storage            imports nothing else of the project
    ml/        the plain ML core              imports storage/; never Dagster
    registry/  the model registry             imports storage/ and ml/; never Dagster
    defs/      the thin Dagster layer         imports anything but the command line
    cli/       the `mnist-pipeline` command   imports anything

Every import statement counts, also those inside functions (where the heavy
libraries are imported), so a layer cannot reach up lazily either.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mnist_pipeline"

# layer -> the project packages its modules may import (besides their own)
ALLOWED = {
    "storage": set(),
    "ml": {"storage"},
    "registry": {"storage", "ml"},
    "defs": {"storage", "ml", "registry", "paths", "display", "settings"},
}
NEVER_DAGSTER = {"storage", "ml", "registry"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import statement in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def modules_of(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def layer_violations(layer: str) -> list[str]:
    violations = []
    for path in modules_of(layer):
        for line, module in imported_modules(path):
            parts = module.split(".")
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if parts[0] == "dagster" and layer in NEVER_DAGSTER:
                violations.append(f"{where}: imports {module} (layer {layer}/ must not depend on Dagster)")
            if parts[0] == "mnist_pipeline" and len(parts) > 1:
                target = parts[1]
                if target != layer and target not in ALLOWED[layer]:
                    violations.append(f"{where}: imports {module} (layer {layer}/ may import {sorted(ALLOWED[layer]) or 'nothing else'})")
    return violations


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    assert modules_of(layer), f"expected modules under mnist_pipeline/{layer}/, found none"
    assert layer_violations(layer) == []


def test_the_scan_sees_imports_inside_functions(tmp_path, monkeypatch):
    # Guards the test above: a lazy import reaching up a layer must be found too.
    fake = tmp_path / "mnist_pipeline"
    (fake / "ml").mkdir(parents=True)
    (fake / "ml" / "sneaky.py").write_text("def f():\n    from mnist_pipeline.defs.jobs import JOBS\n    import dagster\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert layer_violations("ml") == [
        "mnist_pipeline/ml/sneaky.py:2: imports mnist_pipeline.defs.jobs (layer ml/ may import ['storage'])",
        "mnist_pipeline/ml/sneaky.py:3: imports dagster (layer ml/ must not depend on Dagster)",
    ]


def test_the_ml_core_and_the_registry_import_without_dagster_installed():
    """What a notebook gets: every module of ml/, storage/ and registry/ imports with Dagster absent."""
    modules = [
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for layer in sorted(NEVER_DAGSTER)
        for path in modules_of(layer)
    ]
    script = (
        "import sys, importlib\n"
        "sys.modules['dagster'] = None  # any `import dagster` now raises ImportError\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name.removesuffix('.__init__'))\n"
        "print(len(" + repr(modules) + "))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(len(modules))


def readme_notebook_example() -> str:
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme[readme.index("## The ML core, without Dagster") :]
    return section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]


@pytest.mark.real_data
def test_the_readme_s_notebook_example_trains_with_dagster_absent(real_mnist_cache, tmp_path):
    """The README's ML-core example, run as written but for one epoch and the test's MNIST cache."""
    example = readme_notebook_example()
    assert 'cache_dir=Path("~/.mnist_pipeline/mnist_cache")' in example and "epochs=recipe.epochs" in example
    example = example.replace('Path("~/.mnist_pipeline/mnist_cache")', f"Path({str(real_mnist_cache)!r})")
    example = example.replace("epochs=recipe.epochs", "epochs=1")
    script = "import sys\nsys.modules['dagster'] = None  # any `import dagster` now raises ImportError\n" + example
    # cwd elsewhere, as a notebook's would be; PYTHONPATH, so it is this checkout's package that runs
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy_line, *probability_lines = result.stdout.strip().splitlines()[-3:]
    accuracy = float(accuracy_line.removeprefix("test accuracy "))
    assert accuracy > 0.9, f"expected one epoch of the tutorial recipe to reach over 90% on MNIST, found {accuracy}"
    assert "[[" in probability_lines[0], result.stdout[-1000:]
