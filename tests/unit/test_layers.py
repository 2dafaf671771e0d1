"""The layers of samverkan, checked on the source with ``ast`` (nothing is imported).

flows (the commands, the pages, the application) uses messaging and store; messaging uses
store; store uses neither. Every database query lives in ``store/queries/``: outside store,
nothing builds SQL or runs it, it only calls ``queries.<name>(session, ...)``. And the
modules import one another without a circle at module level (an import inside a function is
lazy on purpose and runs after every module has loaded).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flows", "messaging", "store")
# What each layer must not import.
FORBIDDEN = {"messaging": {"flows"}, "store": {"flows", "messaging"}}
SQL_LIBRARIES = ("sqlalchemy", "sqlmodel")
# Outside store, these are all that may come from the SQL libraries: the types an engine and
# a session have, and the errors (``sqlalchemy.exc``).
ALLOWED_OUTSIDE_STORE = {"Engine", "Session"}
ALLOWED_MODULES = ("sqlalchemy.exc",)
QUERY_BUILDERS = {"select", "update", "delete", "insert", "text"}
# Methods that run SQL: anywhere for these two, on a session or connection for the others.
RUNS_SQL = {"exec", "exec_driver_sql"}
RUNS_SQL_ON_SESSION = {"execute", "scalar", "scalars", "query"}
SESSION_NAMES = ("session", "conn", "connection", "engine")


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    target: str  # the module named, resolved
    names: tuple[str, ...]  # for ``from target import names``; empty for ``import target``


def modules(root: Path) -> dict[str, Path]:
    """Every module of the three packages under ``root``, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is loaded: not those in functions, nor those
    only for the type checker."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _top_level(ast.Module(body=[other], type_ignores=[]))
        else:
            yield from _top_level(child)


def _resolve(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative ones included)."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(name: str, path: Path, *, top_level: bool) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = _top_level(tree) if top_level else ast.walk(tree)
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [Import(path, node.lineno, a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = tuple(a.name for a in node.names)
            found.append(Import(path, node.lineno, _resolve(name, path, node), names))
    return found


def _where(root: Path, path: Path, line: int) -> str:
    return f"{path.relative_to(root).as_posix()}:{line}"


def layer_problems(root: Path) -> list[str]:
    """Each import that crosses a layer the wrong way, as ``file:line: what``."""
    problems = []
    for name, path in modules(root).items():
        layer = name.split(".")[0]
        for imp in imports(name, path, top_level=False):
            if imp.target.split(".")[0] in FORBIDDEN.get(layer, set()):
                problems.append(
                    f"{_where(root, path, imp.line)}: {layer} imports {imp.target}; "
                    f"{layer} may not import {' or '.join(sorted(FORBIDDEN[layer]))}"
                )
    return problems


def _receiver(node: ast.expr) -> str:
    """The last name of what a method is called on (``run.session`` -> ``session``)."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def query_problems(root: Path) -> list[str]:
    """Each place outside store that builds or runs SQL, as ``file:line: what``."""
    problems: list[tuple[Path, int, str]] = []
    for name, path in modules(root).items():
        if name.split(".")[0] == "store":
            continue
        for imp in imports(name, path, top_level=False):
            library = imp.target.split(".")[0]
            if library not in SQL_LIBRARIES or imp.target.startswith(ALLOWED_MODULES):
                continue
            if imp.names:
                wrong = [n for n in imp.names if n not in ALLOWED_OUTSIDE_STORE]
            else:  # import sqlalchemy: anything may be reached through it
                wrong = [imp.target]
            for what in wrong:
                kind = "builds a query with" if what in QUERY_BUILDERS else "uses"
                problems.append((path, imp.line, f"{kind} {what} from {imp.target}"))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method, on = node.func.attr, _receiver(node.func.value)
            if method in RUNS_SQL or (
                method in RUNS_SQL_ON_SESSION and on.lower().endswith(SESSION_NAMES)
            ):
                problems.append((path, node.lineno, f"runs SQL with {on}.{method}()"))
    return [
        f"{_where(root, path, line)}: {what}; queries belong in store/queries/"
        for path, line, what in sorted(problems)
    ]


def import_graph(root: Path) -> dict[str, list[tuple[str, int]]]:
    """Which modules each module imports when it is loaded, with the line that does it.

    ``import a.b.c`` (or ``from a.b.c import x``) runs ``a``, ``a.b`` and ``a.b.c`` first,
    except the packages the importing module is itself inside (they are loading already);
    ``from a.b import c`` runs the module ``a.b.c`` too when there is one.
    """
    known = modules(root)
    graph: dict[str, list[tuple[str, int]]] = {name: [] for name in known}
    for name, path in known.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for imp in imports(name, path, top_level=True):
            parts = imp.target.split(".")
            targets = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
            targets += [f"{imp.target}.{n}" for n in imp.names]
            for target in targets:
                if target in known and target not in own and target != name:
                    graph[name].append((target, imp.line))
    return graph


def import_cycles(root: Path) -> list[str]:
    """Every circle of module-level imports (one per set of modules in it), spelled out."""
    graph, known = import_graph(root), modules(root)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[tuple[str, int]] = []
    found: list[str] = []
    seen: set[frozenset[str]] = set()

    def visit(module: str) -> None:
        state[module] = 1
        for target, line in graph[module]:
            path.append((module, line))
            if state.get(target) == 1:
                start = next(i for i, (m, _) in enumerate(path) if m == target)
                circle = path[start:]
                members = frozenset(m for m, _ in circle)
                if members not in seen:
                    seen.add(members)
                    steps = [f"{m} ({_where(root, known[m], ln)})" for m, ln in circle]
                    found.append("import cycle: " + " -> ".join([*steps, target]))
            elif target not in state:
                visit(target)
            path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_messaging_imports_no_flows_and_store_imports_neither() -> None:
    assert layer_problems(ROOT) == []


def test_every_query_is_in_store() -> None:
    assert query_problems(ROOT) == []


def test_no_module_level_import_cycle() -> None:
    assert import_cycles(ROOT) == []


def test_every_query_function_is_reached_as_queries_dot_name() -> None:
    """``from store import queries`` then ``queries.<name>``: one namespace for callers."""
    import importlib
    import pkgutil

    from store import queries

    defined = {}
    for info in pkgutil.iter_modules(queries.__path__):
        module = importlib.import_module(f"store.queries.{info.name}")
        for name, value in vars(module).items():
            own = inspect.isfunction(value) and value.__module__ == module.__name__
            if own and not name.startswith("_"):
                defined[name] = value
    assert defined, "store.queries has no functions"
    missing = sorted(n for n, f in defined.items() if getattr(queries, n, None) is not f)
    assert missing == []
    assert set(defined) <= set(queries.__all__)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(inspect.cleandoc(text) + "\n", encoding="utf-8")


BAD_TREE = {
    "flows/__init__.py": "",
    "flows/a.py": """
        from flows import b

        def later():
            from flows import c  # lazy: no cycle
        """,
    "flows/b.py": """
        from typing import TYPE_CHECKING

        import flows.a

        if TYPE_CHECKING:
            from flows.c import Thing
        """,
    "flows/c.py": """
        from sqlalchemy import Engine
        from sqlmodel import Session, col, select

        import flows.a

        def count(run, conn):
            run.session.exec(select(1))
            conn.exec_driver_sql("PRAGMA foreign_keys")
            run.session.get(object, 1)  # one row by its key: allowed
        """,
    "messaging/__init__.py": "",
    "messaging/m.py": """
        def lazy():
            from flows.a import later
        """,
    "store/__init__.py": "",
    "store/x.py": """
        from sqlalchemy import select

        from messaging import m
        from flows.a import later
        """,
}


def test_the_checks_find_a_bad_tree(tmp_path: Path) -> None:
    """The checks are not vacuous: on a tree with every fault they name each one."""
    _write(tmp_path, BAD_TREE)
    assert set(modules(tmp_path)) == {
        "flows",
        "flows.a",
        "flows.b",
        "flows.c",
        "messaging",
        "messaging.m",
        "store",
        "store.x",
    }
    assert layer_problems(tmp_path) == [
        "messaging/m.py:2: messaging imports flows.a; messaging may not import flows",
        "store/x.py:3: store imports messaging; store may not import flows or messaging",
        "store/x.py:4: store imports flows.a; store may not import flows or messaging",
    ]
    assert query_problems(tmp_path) == [
        "flows/c.py:2: builds a query with select from sqlmodel; queries belong in store/queries/",
        "flows/c.py:2: uses col from sqlmodel; queries belong in store/queries/",
        "flows/c.py:7: runs SQL with session.exec(); queries belong in store/queries/",
        "flows/c.py:8: runs SQL with conn.exec_driver_sql(); queries belong in store/queries/",
    ]
    # a -> b -> a at module level; c -> a is no circle; a's import of c is lazy and b's
    # is for the type checker only, so neither closes one.
    assert import_cycles(tmp_path) == [
        "import cycle: flows.a (flows/a.py:1) -> flows.b (flows/b.py:3) -> flows.a"
    ]


def test_a_package_that_imports_its_own_modules_is_no_cycle(tmp_path: Path) -> None:
    """``flows/stages/__init__.py`` imports its kinds, and they import ``flows.stages.base``:
    the package is loading already, so that is no circle; importing the package back is."""
    _write(
        tmp_path,
        {
            "flows/__init__.py": "",
            "flows/stages/__init__.py": "from flows.stages import base, email",
            "flows/stages/base.py": "import json",
            "flows/stages/email.py": "from flows.stages.base import thing",
            "flows/other.py": "from flows.stages.email import x",
            "flows/loop.py": "from flows.stages import KINDS",
            "messaging/__init__.py": "",
            "store/__init__.py": "",
        },
    )
    assert import_cycles(tmp_path) == []
    _write(tmp_path, {"flows/stages/base.py": "from flows.loop import nothing"})
    assert import_cycles(tmp_path) == [
        "import cycle: flows.loop (flows/loop.py:1) -> flows.stages (flows/stages/__init__.py:1)"
        " -> flows.stages.base (flows/stages/base.py:1) -> flows.loop"
    ]
