"""The audit package and the backends do not import each other: both meet in
`dogqueue.log` (the chain and the LogReader protocol)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "dogqueue"


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, statically (absolute names)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
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
    [("audit", "dogqueue.backend"), ("backend", "dogqueue.audit"), ("log", "dogqueue.backend")],
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
