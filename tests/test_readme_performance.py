"""The examples of the README's Performance section run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def section_examples(title: str) -> list[str]:
    text = README.read_text("utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_performance_section_has_examples() -> None:
    assert section_examples("Performance")


@pytest.mark.parametrize("index", range(len(section_examples("Performance"))))
def test_performance_example_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = section_examples("Performance")[index]
    exec(compile(code, f"README.md Performance example {index + 1}", "exec"), {})
    assert (tmp_path / "queue.db").exists()
