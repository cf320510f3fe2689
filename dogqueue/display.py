"""Showing stored text safely: job errors, payloads and keys may hold control characters
and terminal escape sequences, which must be shown, never obeyed."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control character (ESC, BEL, CR, C1 codes; also newlines and tabs
    unless `keep_newlines`) written as a visible escape such as `\\x1b`."""
    pattern = _CONTROL if keep_newlines else _CONTROL_OR_NEWLINE
    return pattern.sub(_escape, text)


def one_line(text: str, width: int = 120) -> str:
    """The first line of `text`, made visible and cut to `width` characters."""
    lines = text.strip().splitlines() or [""]
    first = visible(lines[0])
    more = len(lines) > 1
    if len(first) > width:
        first, more = first[: width - 1], True
    return first + ("…" if more else "")


def span(delta: timedelta) -> str:
    """A duration in plain units: "184 ms", "2.5 s", "3.0 min", "1.5 h", "2.0 days".
    Stamps come from writers' clocks, which may differ: a negative span reads "0 ms"."""
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def moment(at: datetime) -> str:
    """A time to the millisecond: `2026-12-04 09:41:12.345+00:00`."""
    return at.isoformat(sep=" ", timespec="milliseconds")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char, f"\\x{ord(char):02x}")
