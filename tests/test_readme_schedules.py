"""The README's cron example ("Periodic jobs: cron schedules") runs as written and prints
what the README says it prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_the_cron_example_prints_what_the_readme_says(capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("### Periodic jobs: cron schedules", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    [claimed] = re.findall(r"prints `([^`]*)`", section)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip() == claimed
