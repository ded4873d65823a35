"""Code versions follow the source: an edit changes exactly the versions of the code it touches."""

import ast
import gc
import sys
import textwrap
import traceback

import pytest

from mnist_pipeline.definitions import defs
from mnist_pipeline.defs import code_version as cv

PACKAGE = "cvtest_project"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A throwaway package: helpers.py, plus assets.py with two functions sharing one helper."""
    root = tmp_path / PACKAGE
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "helpers.py").write_text("def scale(x):\n    return x / 255\n")
    (root / "assets.py").write_text(
        textwrap.dedent(
            f"""
            from {PACKAGE}.helpers import scale

            FACTOR = 2

            def double(x):
                return x * FACTOR

            def first(x):
                return double(x)

            def second(x):
                from {PACKAGE}.helpers import scale as local_scale
                return local_scale(x)

            def third(x):
                return x
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    forget_package()
    yield root
    forget_package()


def forget_package():
    """Drop the package from import caches, so each test's copy is the one found."""
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]
    cv.forget_sources()


def versions():
    cv.forget_sources()  # the tests edit the files between calls
    return {name: cv.code_version(f"{PACKAGE}.assets", name, project=PACKAGE) for name in ("first", "second", "third")}


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_versions_are_stable_and_distinct(project):
    assert versions() == versions()
    assert len(set(versions().values())) == 3


def test_editing_a_function_changes_only_its_version(project):
    before = versions()
    edit(project / "assets.py", "def third(x):\n    return x\n", "def third(x):\n    return x + 1\n")
    after = versions()
    assert after["third"] != before["third"]
    assert after["first"] == before["first"] and after["second"] == before["second"]


def test_editing_a_module_level_helper_changes_its_callers(project):
    before = versions()
    edit(project / "assets.py", "FACTOR = 2", "FACTOR = 3")
    after = versions()
    assert after["first"] != before["first"], "first uses double, which uses FACTOR"
    assert after["second"] == before["second"] and after["third"] == before["third"]


def test_editing_an_imported_module_changes_the_functions_that_import_it(project):
    before = versions()
    edit(project / "helpers.py", "x / 255", "x / 256")
    after = versions()
    assert after["second"] != before["second"], "second imports helpers inside its body"
    assert after["third"] == before["third"]


def test_decorators_and_comments_outside_the_function_do_not_count(project):
    before = versions()
    edit(project / "assets.py", "def third(x):", "# a note\ndef third(x):")
    assert versions() == before


def test_unknown_function_is_an_error(project):
    with pytest.raises(NameError, match=rf"{PACKAGE}.assets: expected a top-level definition named 'fourth'"):
        cv.code_version(f"{PACKAGE}.assets", "fourth", project=PACKAGE)


def test_every_asset_has_a_source_derived_code_version():
    graph = defs().resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_materializable:
            module = node.assets_def.op.compute_fn.decorated_fn.__module__
            assert node.code_version == cv.code_version(module, key.to_user_string()), key


def asset_modules_and_names() -> list[tuple[str, str]]:
    graph = defs().resolve_asset_graph()
    return [
        (graph.get(key).assets_def.op.compute_fn.decorated_fn.__module__, key.to_user_string())
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    ]


class FormatsATracebackWhenCollected:
    """Garbage only the collector frees (a cycle), whose finalizer formats a traceback, as SQLAlchemy's
    connection finalizers log one: on Python 3.11 that parses the failing line with ast.parse."""

    def __init__(self):
        self.cycle = self

    def __del__(self):
        try:
            values = {}
            values["missing"] + 1
        except KeyError:
            traceback.format_exc()


def parse_while_collecting(parse, source: str, rounds: int = 20) -> None:
    thresholds = gc.get_threshold()
    gc.set_threshold(100, 1, 1)
    try:
        for _ in range(rounds):
            gc.disable()
            for _ in range(20):
                FormatsATracebackWhenCollected()
            gc.enable()
            parse(source)
    finally:
        gc.set_threshold(*thresholds)
        gc.enable()
        gc.collect()


def test_parsing_a_module_survives_a_collection_that_formats_a_traceback():
    source = cv._source("mnist_pipeline.defs.code_version") * 3
    if sys.version_info < (3, 11, 8):  # python/cpython#106905, what cv._parse guards against
        with pytest.raises(SystemError, match="AST constructor recursion depth mismatch"):
            parse_while_collecting(ast.parse, source)
    parse_while_collecting(cv._parse, source)
    assert gc.isenabled()


def test_computing_every_asset_s_version_parses_each_module_once(monkeypatch):
    import ast
    from collections import Counter

    parsed = Counter()
    real_parse = ast.parse

    def counting_parse(source, *args, **kwargs):
        parsed[source] += 1
        return real_parse(source, *args, **kwargs)

    before = {name: cv.code_version(module, name) for module, name in asset_modules_and_names()}
    cv.forget_sources()
    monkeypatch.setattr(ast, "parse", counting_parse)
    after = {name: cv.code_version(module, name) for module, name in asset_modules_and_names()}
    assert after == before
    assert len(parsed) > 10 and max(parsed.values()) == 1, "a module parsed more than once"


def test_source_segments_are_ast_s_own(monkeypatch):
    """Code versions hash each definition's source segment: it must be exactly what ast.get_source_segment gives."""
    import ast
    import pkgutil

    import mnist_pipeline

    # ast.get_source_segment splits the whole source into lines on every call (58 s for the package's
    # 31,000 nodes in CI); given the module's source itself, it gets its own split of it, made once.
    split = ast._splitlines_no_ff
    checked = 0
    for module in pkgutil.walk_packages(mnist_pipeline.__path__, "mnist_pipeline."):
        source = cv._source(module.name)
        lines = split(source)
        monkeypatch.setattr(ast, "_splitlines_no_ff", lambda text, *rest: lines if text is source else split(text, *rest))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.stmt, ast.expr)):
                assert cv.source_segment(module.name, node) == (ast.get_source_segment(source, node) or ""), (module.name, node.lineno)
                checked += 1
    assert checked > 1000


def test_source_segments_follow_python_s_line_breaks(project):
    """Line ends as Python reads them (CR LF and CR become LF); a form feed does not end a line."""
    import ast

    (project / "odd.py").write_bytes(b"A = 1\r\ndef f(x):\r    return x\n\x0cdef g():\n    return '\x0c'\n")
    cv.forget_sources()
    source = cv._source(f"{PACKAGE}.odd")
    for node in ast.parse(source).body:
        assert cv.source_segment(f"{PACKAGE}.odd", node) == ast.get_source_segment(source, node)


@pytest.fixture
def domain_package(project):
    """The throwaway package plus a domain module: an asset whose decorator sets no code version,
    one bound under another name than its function's, and an observable source."""
    (project / "domain_assets.py").write_text(
        textwrap.dedent(
            f"""
            import dagster as dg

            from {PACKAGE}.helpers import scale

            @dg.asset
            def plain(context):
                return scale(1)

            def _renamed(context):
                return 2

            bound_name = dg.asset(name="bound_name")(_renamed)

            @dg.multi_observable_source_asset(specs=[dg.AssetSpec("observed")])
            def observed():
                return dg.ObserveResult(asset_key="observed", data_version=dg.DataVersion("1"))
            """
        )
    )
    return project


def test_a_domain_sets_each_asset_s_code_version_from_where_it_is_defined(domain_package):
    import importlib

    from mnist_pipeline.defs.domain import domain_definitions

    module = importlib.import_module(f"{PACKAGE}.domain_assets")
    graph = domain_definitions("test", [module]).resolve_asset_graph()
    versions = {key.to_user_string(): graph.get(key).code_version for key in graph.get_all_asset_keys()}
    assert versions == {
        "plain": cv.code_version(module.__name__, "plain"),
        # The module's `bound_name = dg.asset(...)(_renamed)`, which uses _renamed: its source counts.
        "bound_name": cv.code_version(module.__name__, "bound_name"),
        "observed": None,  # observed, not computed: its data version is what it observes
    }
    edit(domain_package / "domain_assets.py", "return 2", "return 3")
    cv.forget_sources()
    assert cv.code_version(module.__name__, "bound_name") != versions["bound_name"]


def test_an_asset_imported_into_a_domain_module_is_an_error_naming_the_module_and_name(domain_package):
    import importlib

    from mnist_pipeline.defs.domain import domain_definitions

    (domain_package / "reexport.py").write_text(f"from {PACKAGE}.domain_assets import plain\n")
    module = importlib.import_module(f"{PACKAGE}.reexport")
    with pytest.raises(NameError, match=rf"{PACKAGE}.reexport: expected a top-level definition named 'plain', found none"):
        domain_definitions("test", [module])
