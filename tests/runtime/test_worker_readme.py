"""The README's "Running workers" examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def section_code() -> list[str]:
    text = README.read_text()
    section = text.split("\n## Running workers\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_running_workers_examples_run() -> None:
    blocks = section_code()
    assert blocks
    for code in blocks:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
