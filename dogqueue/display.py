"""Showing stored text safely: job errors, payloads and keys may hold control characters
and terminal escape sequences, which must be shown, never obeyed."""

from __future__ import annotations

import re

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


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char, f"\\x{ord(char):02x}")
