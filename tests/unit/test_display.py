"""Stored text shown on a terminal or page: control characters become visible escapes."""

from __future__ import annotations

from dogqueue.display import one_line, visible


def test_terminal_escapes_and_controls_are_made_visible() -> None:
    hostile = "\x1b[2J\x1b]0;owned\x07text\r\x9bX\x7f"
    shown = visible(hostile)
    assert not any(ord(char) < 32 or 0x7F <= ord(char) <= 0x9F for char in shown)
    assert shown == "\\x1b[2J\\x1b]0;owned\\x07text\\r\\x9bX\\x7f"


def test_newlines_kept_only_when_asked() -> None:
    assert visible("a\nb\tc") == "a\\nb\\tc"
    assert visible("a\nb\tc", keep_newlines=True) == "a\nb\tc"


def test_one_line_cuts_multi_line_errors() -> None:
    assert one_line("Traceback\n  File x\nValueError") == "Traceback…"
    assert one_line("x" * 200, width=10) == "x" * 9 + "…"
    assert one_line("") == ""
