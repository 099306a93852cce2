"""The layering rules of the README, checked on the source (no database, no imports of the code under test).

* (a) The import graph of ``analytics/`` and ``dashboard/`` has no cycle. Edges are every ``import`` /
  ``from ... import`` anywhere in a module (module level, inside functions, under ``TYPE_CHECKING``): a cycle
  hidden in a function is still a cycle, it only fails later.
* (b) No module imports another module's private (``_name``) function, class or constant, and no module
  outside a package imports that package's private modules (``analytics.loaders._core``).
* (c) ``analytics/`` never imports Streamlit.
* (d) Pages are thin: they import only ``analytics.*``, ``dashboard.*`` and libraries (never another page,
  the tests, the benchmarks, nor a database driver or SQLAlchemy: SQL lives in ``analytics``).

Known exceptions are listed below with who removes them; each one must still be needed (a stale allowance
fails the test too, so the list can only shrink).
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("analytics", "dashboard")

#: (importer, imported) edges allowed to close a cycle, and why (none: keep it that way).
ALLOWED_CYCLE_EDGES: dict[tuple[str, str], str] = {}

#: (importer, module, private name) allowed (none).
ALLOWED_PRIVATE: set[tuple[str, str, str]] = set()

#: Libraries a page must not import: queries belong in analytics/.
PAGE_FORBIDDEN = {"sqlalchemy", "duckdb", "duckdb_engine", "sqlite3", "psycopg", "psycopg2", "pyarrow"}


def _modules(*folders: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the folders (migrations excluded: Alembic
    loads them by path)."""
    found = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules(*PACKAGES)
PAGES = {name: path for name, path in _modules("pages").items()}


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _imports(name: str, path: Path, modules: dict[str, Path]):
    """Yield ``(line, imported module name, imported attribute or None, local alias)`` for every import."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None, alias.asname or alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                yield node.lineno, module, alias.name, alias.asname or alias.name


def _resolve(dotted: str, modules: dict[str, Path]) -> str | None:
    """The project module a dotted name lives in (longest prefix that is a module), or None."""
    while dotted and dotted not in modules:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def _graph() -> dict[str, dict[str, int]]:
    """importer -> {imported module: first line}. ``import a.b.c`` also runs ``a.b``'s ``__init__``, so a
    module outside a package that imports one of its submodules depends on the package too."""
    edges: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    for name, path in MODULES.items():
        for line, module, attr, _ in _imports(name, path, MODULES):
            full = f"{module}.{attr}" if attr else module
            target = full if full in MODULES else _resolve(module, MODULES)
            if target is None or target == name:
                continue
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep in MODULES and dep != name and not name.startswith(dep + "."):
                    edges[name].setdefault(dep, line)
    return edges


def _cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _describe(comp: list[str], edges) -> str:
    inside = [f"{a} -> {b} (line {edges[a][b]})" for a in comp for b in sorted(edges[a]) if b in comp]
    return "; ".join(inside)


# ------------------------------------------------------------------------------------------------ (a)
def test_import_graph_has_no_cycle():
    edges = _graph()
    for (a, b), why in ALLOWED_CYCLE_EDGES.items():
        assert b in edges.get(a, {}), f"allowed edge {a} -> {b} ({why}) is gone: remove it from ALLOWED_CYCLE_EDGES"
    pruned = {a: {b: line for b, line in deps.items() if (a, b) not in ALLOWED_CYCLE_EDGES}
              for a, deps in edges.items()}
    cycles = _cycles(pruned)
    assert not cycles, "import cycles: " + " | ".join(_describe(c, pruned) for c in cycles)


def test_the_graph_sees_function_level_imports():
    """The detector itself: an import inside a function is an edge."""
    edges = _graph()
    # analytics.dunning imports analytics.kpis inside _bucket_label only
    assert "analytics.kpis" in edges["analytics.dunning"]
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]


# ------------------------------------------------------------------------------------------------ (b)
def _private_uses(modules: dict[str, Path]):
    """``(importer, module, name, line)`` for each private name taken from another project module, by
    ``from m import _x`` or ``alias._x`` where alias is an imported module, and for each import of another
    package's private module."""
    everything = {**MODULES, **modules}
    for name, path in modules.items():
        aliases: dict[str, str] = {}  # local name -> project module it is bound to
        for line, module, attr, local in _imports(name, path, everything):
            full = f"{module}.{attr}" if attr else module
            if attr is None:  # import a.b.c [as x]: binds a, or x to a.b.c
                bound = local if local == module.split(".")[0] else module
                if bound in MODULES:
                    aliases[local] = bound
            elif full in MODULES:  # from a.b import c [as x]: c is a module
                aliases[local] = full
            target = _resolve(full, MODULES)
            if target and target != name:
                private_parts = [p for p in target.split(".") if p.startswith("_") and not p.startswith("__")]
                owner = target.rpartition(".")[0]
                if private_parts and not (name == owner or name.startswith(owner + ".")):
                    yield name, target, private_parts[0], line
            if attr and attr.startswith("_") and not attr.startswith("__") and full not in MODULES \
                    and module in MODULES and module != name:
                yield name, module, attr, line
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                chain, value = [], node.value
                while isinstance(value, ast.Attribute):
                    chain.append(value.attr)
                    value = value.value
                if isinstance(value, ast.Name) and value.id in aliases:
                    target = ".".join([aliases[value.id], *reversed(chain)])
                    if target in MODULES and target != name:
                        yield name, target, node.attr, node.lineno


def test_no_module_imports_another_modules_private_names():
    uses = list(_private_uses({**MODULES, **PAGES}))
    found = {(a, m, n) for a, m, n, _ in uses}
    bad = sorted({f"{a} uses {m}.{n} (line {line})" for a, m, n, line in uses if (a, m, n) not in ALLOWED_PRIVATE})
    assert not bad, "private names used across modules: " + "; ".join(bad)
    stale = sorted(ALLOWED_PRIVATE - found)
    assert not stale, f"no longer used, remove from ALLOWED_PRIVATE: {stale}"


def test_the_private_check_sees_attribute_access(tmp_path):
    fake = tmp_path / "fake.py"
    fake.write_text("from analytics.kpis import operations as ops\nfrom analytics.risk import scoring\n"
                    "x = ops._pct(1, 2)\ny = scoring.train\n")
    uses = {(m, n) for _, m, n, _ in _private_uses({"fake": fake})}
    assert uses == {("analytics.kpis.operations", "_pct")}


# ------------------------------------------------------------------------------------------------ (c)
def test_analytics_never_imports_streamlit():
    bad = [f"{name} line {line}" for name, path in MODULES.items() if name.split(".")[0] == "analytics"
           for line, module, _, _ in _imports(name, path, MODULES) if module.split(".")[0] == "streamlit"]
    assert not bad, f"streamlit imported in analytics/: {bad}"


# ------------------------------------------------------------------------------------------------ (d)
def _local_top_levels() -> set[str]:
    """Top-level names that are this repository's own folders/files (not libraries)."""
    return {p.stem if p.suffix == ".py" else p.name for p in ROOT.iterdir()
            if (p.is_dir() and not p.name.startswith(".")) or p.suffix == ".py"} - set(PACKAGES)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_pages_import_only_analytics_dashboard_and_libraries(page):
    local = _local_top_levels()
    bad = []
    for line, module, _, _ in _imports(page, PAGES[page], PAGES):
        top = module.split(".")[0]
        if top in PACKAGES or top == "__future__":
            continue
        if top in local or top in PAGE_FORBIDDEN or not module:
            bad.append(f"line {line}: {module}")
        elif top not in sys.stdlib_module_names:
            __import__(top)  # a library must be importable from the venv
    assert not bad, f"{page} is not thin: imports {bad}"
