"""Progress on long work: a rich progress bar when `rich` is installed (the [cli]
extra) and stderr is a terminal, otherwise a plain line every tenth of the way."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


@contextmanager
def progress_bar(
    label: str, total: int, stream: TextIO | None = None
) -> Iterator[Callable[[int], None]]:
    """A callable taking the amount done so far, shown against `total`."""
    out = stream or sys.stderr
    if out.isatty():
        try:
            from rich.console import Console
            from rich.progress import Progress
        except ImportError:
            pass
        else:
            with Progress(console=Console(file=out), transient=True) as bar:
                task = bar.add_task(label, total=max(total, 1))
                yield lambda done: bar.update(task, completed=done)
            return
    yield _plain(label, total, out)


def _plain(label: str, total: int, out: TextIO) -> Callable[[int], None]:
    shown = -1

    def update(done: int) -> None:
        nonlocal shown
        tenth = 10 if total <= 0 else min(10, done * 10 // total)
        if tenth > shown:
            shown = tenth
            print(f"{label}: {tenth * 10}% ({done}/{total})", file=out, flush=True)

    return update
