"""Code versions derived from source, so they change exactly when the code does.

An asset's code version hashes:
  - the source of its function (decorators excluded),
  - the module-level functions, classes and constants it uses, transitively,
  - every project module it imports (at module level or inside the function),
    whole, with the project modules those import in turn.

Only files are read (with `ast`); nothing is imported, so computing versions
at definition time never pulls TensorFlow in. Each module is read, parsed and
searched for imports once per process (the versions of all assets are computed
when the definitions are imported, and they share most modules);
`forget_sources()` drops that memory, for code that edits source files.
"""

from __future__ import annotations

import ast
import copy
import gc
import hashlib
import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterator

PROJECT_PACKAGE = "mnist_pipeline"


@lru_cache(maxsize=None)
def _module_file(module_name: str) -> Path:
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"{module_name}: expected a project module with a source file, found none")
    return Path(spec.origin)


@lru_cache(maxsize=None)
def _is_package(module_name: str) -> bool:
    spec = importlib.util.find_spec(module_name)  # imports parent packages only, never the module
    return spec is not None and spec.submodule_search_locations is not None


def _source(module_name: str) -> str:
    return _module_file(module_name).read_text()


def _parse(source: str) -> ast.Module:
    """`ast.parse`, with the garbage collector paused while it runs.

    Python 3.11 before 3.11.8 counts the AST constructor's depth in state shared by every parse
    (python/cpython#106905). A collection during the parse can run a finalizer that formats a
    traceback, which on 3.11 parses the failing line, and the outer parse then fails with
    "SystemError: AST constructor recursion depth mismatch": loading the definitions would fail at
    random. (It failed a CI run, while SQLAlchemy finalized a Dagster instance's connections.)
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source)
    finally:
        if was_enabled:
            gc.enable()


@lru_cache(maxsize=None)
def _parsed(module_name: str) -> tuple[str, ast.Module]:
    """A module's source and syntax tree, read and parsed once."""
    source = _source(module_name)
    return source, _parse(source)


def _is_project(module_name: str, project: str) -> bool:
    return module_name == project or module_name.startswith(project + ".")


def _statements(node: ast.AST) -> Iterator[ast.AST]:
    """`node` and every statement nested in it: what `ast.walk` finds an import statement among,
    without visiting the expressions (most of a syntax tree)."""
    pending = [node]
    while pending:
        statement = pending.pop()
        yield statement
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            pending.extend(getattr(statement, field, ()))


def _imported_modules(node: ast.AST, project: str) -> dict[str, str]:
    """Local name -> project module it refers to, for the import statements under `node`."""
    names: dict[str, str] = {}
    for child in _statements(node):
        if isinstance(child, ast.ImportFrom) and child.module and _is_project(child.module, project):
            for alias in child.names:
                submodule = f"{child.module}.{alias.name}"
                names[alias.asname or alias.name] = submodule if _is_package(child.module) else child.module
        elif isinstance(child, ast.Import):
            for alias in child.names:
                if _is_project(alias.name, project):
                    names[alias.asname or alias.name.split(".")[0]] = alias.name
    return names


def _top_level_definitions(tree: ast.Module) -> dict[str, ast.AST]:
    definitions: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    definitions[target.id] = node
    return definitions


def _used_names(node: ast.AST) -> set[str]:
    return {child.id for child in ast.walk(node) if isinstance(child, ast.Name)}


@lru_cache(maxsize=None)
def _lines(module_name: str) -> tuple[str, ...]:
    """A module's lines, endings kept, split where Python counts lines (CR LF, CR, LF; not at a form feed)."""
    return tuple(re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z", _parsed(module_name)[0]))


def source_segment(module_name: str, node: ast.AST) -> str:
    """`ast.get_source_segment(source, node)` of a module's node (decorators excluded), or "".

    Given only the node's own lines: ast.get_source_segment splits its whole source into lines on
    every call, which was most of the time code versions took.
    """
    lines = _lines(module_name)[node.lineno - 1 : node.end_lineno]
    local = copy.copy(node)
    local.lineno, local.end_lineno = 1, node.end_lineno - node.lineno + 1
    return ast.get_source_segment("".join(lines), local) or ""


@lru_cache(maxsize=None)
def _module_imports(module_name: str, project: str) -> tuple[str, ...]:
    """The project modules a module imports, anywhere in it."""
    _, tree = _parsed(module_name)
    return tuple(_imported_modules(tree, project).values())


@lru_cache(maxsize=None)
def module_closure(module_name: str, project: str = PROJECT_PACKAGE) -> tuple[tuple[str, str], ...]:
    """(module name, source) for a module and every project module it imports, transitively."""
    seen: dict[str, str] = {}
    pending = [module_name]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen[name] = _parsed(name)[0]
        pending.extend(_module_imports(name, project))
    return tuple(sorted(seen.items()))


def forget_sources() -> None:
    """Forget every module file, source and syntax tree read so far, so edited files are read again."""
    for cached in (_module_file, _is_package, _parsed, _lines, _module_imports, module_closure):
        cached.cache_clear()


def code_version(module_name: str, function_name: str, project: str = PROJECT_PACKAGE) -> str:
    """A 16-hex-digit version of `function_name` in `module_name` and everything it relies on."""
    _, tree = _parsed(module_name)
    definitions = _top_level_definitions(tree)
    top_level_imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    module_imports = _imported_modules(ast.Module(body=top_level_imports, type_ignores=[]), project)
    if function_name not in definitions:
        raise NameError(f"{module_name}: expected a top-level definition named {function_name!r}, found none")

    pieces: dict[str, str] = {}
    modules: set[str] = set()
    pending = [function_name]
    while pending:
        name = pending.pop()
        if name in pieces:
            continue
        node = definitions[name]
        pieces[name] = source_segment(module_name, node)  # decorators excluded
        local_imports = _imported_modules(node, project)
        modules.update(local_imports.values())
        for used in _used_names(node):
            if used in local_imports:
                continue
            if used in definitions and used != name:
                pending.append(used)
            elif used in module_imports:
                modules.add(module_imports[used])

    digest = hashlib.sha256()
    for name in sorted(pieces):
        digest.update(f"{module_name}.{name}\0{pieces[name]}\0".encode())
    for module in sorted(modules):
        for closure_name, closure_source in module_closure(module, project):
            digest.update(f"{closure_name}\0{closure_source}\0".encode())
    return digest.hexdigest()[:16]
