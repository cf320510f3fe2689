"""Progress on long work: plain lines without a terminal, a rich bar with one."""

from __future__ import annotations

import io

import pytest

from dogqueue.cli._progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_progress_prints_each_tenth_once() -> None:
    out = io.StringIO()
    with progress_bar("replaying", 1000, out) as update:
        for done in range(0, 1001, 50):
            update(done)
    lines = out.getvalue().splitlines()
    assert lines[0] == "replaying: 0% (0/1000)"
    assert lines[-1] == "replaying: 100% (1000/1000)"
    assert len(lines) == 11


def test_rich_progress_draws_on_a_terminal() -> None:
    pytest.importorskip("rich")
    out = Terminal()
    with progress_bar("replaying", 100, out) as update:
        update(50)
        update(100)
    assert "replaying" in out.getvalue()
    assert "% (" not in out.getvalue()  # not the plain fallback
