"""A failed attempt's error as stored: the exception, then the job's own frames with
their source lines (paths shortened to the package), then the worker's frames that
called it, one per line; causes follow. Read as it is, preformatted."""

from __future__ import annotations

import os
import sys
import sysconfig
import traceback
from pathlib import Path

#: The longest error text stored in a failed event.
MAX_ERROR_CHARS = 16_000
#: Causes and contexts followed below the error itself.
MAX_CAUSES = 3

_DOGQUEUE = str(Path(__file__).resolve().parents[1]) + os.sep
_STDLIB = tuple(
    str(Path(sysconfig.get_paths()[name]).resolve()) + os.sep for name in ("stdlib", "platstdlib")
)


def short_path(filename: str) -> str:
    """`filename` from its package on: the longest import root it lies under cut off
    (`/venv/.../site-packages/app/jobs.py` reads `app/jobs.py`)."""
    try:
        path = str(Path(filename).resolve())
    except (OSError, RuntimeError):
        return filename
    roots = [str(Path(entry or os.getcwd()).resolve()) + os.sep for entry in sys.path]
    under = [root for root in roots if path.startswith(root)]
    return path[len(max(under, key=len)) :] if under else filename


def _is_library(filename: str) -> bool:
    """A frame of dogqueue itself or of the standard library (asyncio, threads)."""
    try:
        path = str(Path(filename).resolve())
    except (OSError, RuntimeError):
        return False
    return path.startswith(_DOGQUEUE) or path.startswith(_STDLIB)


def _frames(error: BaseException) -> list[str]:
    frames = traceback.extract_tb(error.__traceback__)
    # The worker's frames that called into the job come first in Python's order; the
    # job's frames start at the first frame that is neither dogqueue's nor the stdlib's.
    start = next((i for i, f in enumerate(frames) if not _is_library(f.filename)), 0)
    lines = []
    for frame in frames[start:]:
        lines.append(f'  File "{short_path(frame.filename)}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    callers = [f"{short_path(f.filename)}:{f.lineno} in {f.name}" for f in frames[:start]]
    if callers:
        lines.append("  called from: " + " <- ".join(reversed(callers)))
    return lines


def _headline(error: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    return text or type(error).__name__


def format_error(error: BaseException) -> str:
    """The stored text of an attempt's unexpected exception: its type and message first,
    then its frames (the job's own first), then its causes."""
    lines = [_headline(error), *_frames(error)]
    seen = {id(error)}
    current: BaseException | None = error
    for _ in range(MAX_CAUSES):
        assert current is not None
        if current.__cause__ is not None:
            link, current = "caused by", current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            link, current = "while handling", current.__context__
        else:
            break
        if id(current) in seen:
            break
        seen.add(id(current))
        lines += [f"{link} {_headline(current)}", *_frames(current)]
    text = "\n".join(lines)
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 16] + "\n… (cut short)"
    return text
