"""The README's "Verifying a backend" section works as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def section_code() -> str:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## Verifying a backend", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    code: str = blocks[0]
    return code


def test_the_readme_example_verifies_a_backend() -> None:
    namespace: dict[str, object] = {}
    exec(compile(section_code(), "README.md", "exec"), namespace)
    test = namespace["test_my_backend_keeps_dogqueue_promises"]
    assert callable(test)
    test()


def test_the_backend_option_swaps_the_backend_under_test() -> None:
    # test_mutants.py shows that this factory's backends fail the state machine.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--collect-only",
            "properties/test_backend_state_machine.py",
            "--dogqueue-backend=properties.mutants:PRIORITY_IGNORED",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HYPOTHESIS_PROFILE": "ci"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tests = [line for line in result.stdout.splitlines() if "::" in line]
    assert tests == [
        "properties/test_backend_state_machine.py::"
        "test_backend_matches_the_model[properties.mutants:PRIORITY_IGNORED]"
    ]
