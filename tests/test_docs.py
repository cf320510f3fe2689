"""The README's Python examples and the scripts in examples/ run as written; the README's
backend contract names every method of `Backend` and every built-in backend's constructor."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dogqueue.backend.contract import Backend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.redis import RedisBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.testing.factories import BUILTIN_NAMES

ROOT = Path(__file__).parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_python_blocks_run_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 3
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "['enqueued', 'leased', 'completed']" in out
    assert "600 rows kept\n11\n" in out  # the workflow examples: a chain, a fan-in


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "an example should show what it did"


BUILTIN_BACKENDS = (MemoryBackend, SqliteBackend, PostgresBackend, RedisBackend)


def readme_section(heading: str) -> str:
    """The README's text under `heading`, up to the next heading of its level or above."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    level = heading.split(" ")[0]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", text[start:], re.M)]
    return text[start : start + ends[0]] if ends else text[start:]


def test_the_contract_table_names_every_backend_method() -> None:
    section = readme_section("### The backend contract")
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`(\w+)", row.split(" | ")[0])}
    methods = {
        name
        for name, value in vars(Backend).items()
        if callable(value) and not name.startswith("_")
    }
    assert {"browser", "settle_many", "wait_for_change"} <= methods  # the introspection sees them
    assert not methods - named, f"missing from the table: {sorted(methods - named)}"
    assert not named - methods, f"in the table, not in Backend: {sorted(named - methods)}"


def test_the_contract_names_every_backend_and_its_constructor() -> None:
    assert sorted(b.__name__.removesuffix("Backend").lower() for b in BUILTIN_BACKENDS) == sorted(
        BUILTIN_NAMES
    ), "a new built-in backend: add it here and to the README's backend contract"
    section = readme_section("### The backend contract")
    for backend in BUILTIN_BACKENDS:
        lines = [
            line
            for line in section.splitlines()
            if (found := re.match(rf"- `([\w.]+)\.{backend.__name__}\(", line))
            and getattr(importlib.import_module(found[1]), backend.__name__) is backend
        ]
        assert lines, f"no line gives {backend.__name__}'s constructor with its import path"
        parameters = inspect.signature(backend).parameters
        missing = [name for name in parameters if not re.search(rf"\b{name}\b", lines[0])]
        assert not missing, f"{backend.__name__}: parameters not in the README: {missing}"
