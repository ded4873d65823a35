"""The package uses Dagster's public API only: no module under mnist_pipeline/ imports `dagster._...`.

Dagster's underscored modules change without notice between releases; a project others copy
must not lean on them.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mnist_pipeline"


def private_dagster_uses(source: str) -> list[str]:
    """Each import of a private Dagster module or name in `source`, as `line: what`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {alias.name}" for alias in node.names if alias.name.startswith("dagster._")]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("dagster._"):
                found.append(f"{node.lineno}: from {node.module} import ...")
            elif node.module.split(".")[0] == "dagster":
                found += [f"{node.lineno}: from {node.module} import {alias.name}" for alias in node.names if alias.name.startswith("_")]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("dagster._"):
            found.append(f"{node.lineno}: {node.value!r}")  # importlib.import_module("dagster._...")
    return found


def test_the_scan_finds_every_form_of_private_import():
    source = (
        "import dagster._core.definitions\n"
        "from dagster._time import get_current_datetime\n"
        "from dagster import _check\n"
        "import importlib; importlib.import_module('dagster._utils')\n"
        "import dagster as dg\nfrom dagster import AssetKey\n"
    )
    assert private_dagster_uses(source) == [
        "1: import dagster._core.definitions",
        "2: from dagster._time import ...",
        "3: from dagster import _check",
        "4: 'dagster._utils'",
    ]


def test_no_module_of_the_package_imports_private_dagster():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 40, f"expected the package's modules under {PACKAGE}, found {len(modules)}"
    offending = {
        str(path.relative_to(PACKAGE.parent)): uses
        for path in modules
        if (uses := private_dagster_uses(path.read_text(encoding="utf-8")))
    }
    assert offending == {}, f"private Dagster imports (use the public API, `import dagster as dg`): {offending}"
