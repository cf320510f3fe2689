"""The import rules of the package, read from the source (no import runs):

- the audit package and the backends do not import each other: both meet in
  `dogqueue.log` (the chain and the LogReader protocol);
- no backend imports a sibling backend: each imports only the storage kit, the contract,
  the base, core, log, engine, clock and ids;
- no backend imports the runtime, client, adapter, worker, web or command line;
- core imports nothing outside core;
- the top-level parts of `dogqueue` import each other without a cycle (eager imports:
  module level, outside `if TYPE_CHECKING`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "dogqueue"


def _resolve(node: ast.ImportFrom, package: str) -> str:
    base = node.module or ""
    if node.level:
        parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        base = f"{parent}.{base}" if base else parent
    return base


def _named(node: ast.Import | ast.ImportFrom, package: str) -> set[str]:
    """What an import statement names: its modules, and for `from` each name in its
    module (a name may be a submodule)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = _resolve(node, package)
    return {base, *(f"{base}.{alias.name}" for alias in node.names)}


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def eager_modules(path: Path) -> set[str]:
    """The modules a source file imports when it is imported: module-level statements
    (inside if/try/with too), not functions, not `if TYPE_CHECKING` blocks."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()

    def visit(statements: Iterable[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.update(_named(node, package))
            elif isinstance(node, ast.If):
                if not _type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(ast.parse(path.read_text("utf-8")).body)
    return found


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, statically (absolute names)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.update(_named(node, package))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        ("audit", "dogqueue.backend"),
        ("backend", "dogqueue.audit"),
        ("log", "dogqueue.backend"),
    ],
)
def test_no_import_across(importer: str, forbidden: str) -> None:
    files = sorted((PACKAGE / importer).rglob("*.py"))
    assert files
    crossing = {
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in files
        for name in imported_modules(path)
        if name == forbidden or name.startswith(forbidden + ".")
    }
    assert not crossing


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    """A crossing import in any form is seen (so the test above can fail)."""
    source = PACKAGE / "audit" / "verify.py"
    names = imported_modules(source)
    assert "dogqueue.log.chain" in names and "dogqueue.audit.checkpoint" in names
    locate = imported_modules(PACKAGE / "backend" / "locate.py")
    assert "dogqueue.backend.postgres" in locate


# -- backends, kit and core -----------------------------------------------------------

#: Each backend's files; a backend not written yet (redis) has none.
BACKENDS = {
    "memory": ["backend/memory.py", "backend/memory_log.py"],
    "sqlite": ["backend/sqlite"],
    "postgres": ["backend/postgres"],
    "redis": ["backend/redis", "backend/redis.py"],
    "kit": ["backend/kit"],
}
#: What a backend (and the kit) may import besides itself.
BACKEND_MAY_IMPORT = (
    "dogqueue.backend.kit",
    "dogqueue.backend.contract",
    "dogqueue.backend.browse",  # the contract's read model (Backend.browser)
    "dogqueue.backend.base",
    "dogqueue.core",
    "dogqueue.log",
    "dogqueue.engine",
    "dogqueue.clock",
    "dogqueue.ids",
)
#: What no backend imports, even lazily or for typing.
ABOVE_BACKENDS = (
    "dogqueue.runtime",
    "dogqueue.client",
    "dogqueue.adapter",
    "dogqueue.worker",
    "dogqueue.web",
    "dogqueue.cli",
)
#: Known exceptions, (file, imported module), each with who removes it.
KNOWN_BACKEND_EXCEPTIONS: set[tuple[str, str]] = set()


def _files(places: list[str]) -> list[Path]:
    found: list[Path] = []
    for place in places:
        path = PACKAGE / place
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
    return found


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _known_exception(path: Path, name: str) -> bool:
    where = str(path.relative_to(PACKAGE.parent))
    return any(
        where == file and _within(name, (module,)) for file, module in KNOWN_BACKEND_EXCEPTIONS
    )


def _own_prefixes(places: list[str]) -> list[str]:
    return ["dogqueue." + place.removesuffix(".py").replace("/", ".") for place in places]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_backend_imports_only_the_kit_and_what_lies_below(backend: str) -> None:
    places = BACKENDS[backend]
    allowed = (*BACKEND_MAY_IMPORT, *_own_prefixes(places))
    wrong = {
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in _files(places)
        for name in imported_modules(path)
        if _within(name, ("dogqueue",))
        and not _within(name, allowed)
        and not _known_exception(path, name)
    }
    assert not wrong


def test_no_backend_imports_the_application_side() -> None:
    wrong = {
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in sorted((PACKAGE / "backend").rglob("*.py"))
        for name in imported_modules(path)
        if _within(name, ABOVE_BACKENDS) and not _known_exception(path, name)
    }
    assert not wrong


def test_core_imports_nothing_outside_core() -> None:
    files = sorted((PACKAGE / "core").rglob("*.py"))
    assert files
    wrong = {
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in files
        for name in imported_modules(path)
        if _within(name, ("dogqueue",)) and not _within(name, ("dogqueue.core",))
    }
    assert not wrong


# -- no cycle between top-level parts ---------------------------------------------------

#: Known eager edges that close a cycle, (importing part, imported part), each with who
#: removes it.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def _part(module: str) -> str:
    """The top-level part of `dogqueue` a module belongs to ("dogqueue" for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def part_graph() -> dict[str, set[str]]:
    """Top-level part -> the parts its modules import eagerly."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        source = _part(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        targets = graph.setdefault(source, set())
        for name in eager_modules(path):
            if _within(name, ("dogqueue",)) and _part(name) != source:
                targets.add(_part(name))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> Iterator[None]:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                yield from visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(group) > 1:
                found.append(sorted(group))
        yield None

    for node in sorted(graph):
        if node not in index:
            list(visit(node))
    return sorted(found)


def test_no_import_cycle_between_top_level_parts() -> None:
    graph = part_graph()
    assert {"core", "backend", "engine", "log"} <= graph.keys()
    for source, target in KNOWN_CYCLE_EDGES:
        graph.get(source, set()).discard(target)
    assert cycles(graph) == []


def test_the_cycle_finder_sees_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_eager_imports_leave_out_typing_and_function_bodies() -> None:
    eager = eager_modules(PACKAGE / "backend" / "memory_log.py")
    every = imported_modules(PACKAGE / "backend" / "memory_log.py")
    assert "dogqueue.backend.memory" in every and "dogqueue.backend.memory" not in eager
