"""The README's "Audit, replay and inspection" examples run as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SECTION = "## Audit, replay and inspection"
Story = tuple[Path, dict[str, str]]


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(), flags=re.DOTALL)


def test_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = blocks("python")
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "['enqueued', 'leased', 'failed']"
    assert out[1] == "leased"
    assert out[2].startswith("its last attempt failed (SMTP timeout)")
    assert out[3] == "True None"


def test_command_examples_run(story_log: Story) -> None:
    path, ids = story_log
    commands = blocks("sh")[0].strip().splitlines()
    assert len(commands) >= 10
    for line in commands:
        args = shlex.split(line.replace("JOB_ID", ids["retried"]))
        assert args[0] == "dogqueue"
        done = subprocess.run(
            [sys.executable, "-m", "dogqueue", *args[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=path.parent,
            check=False,
        )
        assert done.returncode == 0, (line, done.stdout, done.stderr)
