"""Checking that a log handed to an importer is in log order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from dogqueue.core.errors import StorageError
from dogqueue.core.events import AnyEvent


def in_log_order(events: Iterable[AnyEvent]) -> Iterator[AnyEvent]:
    """`events`, one by one, raising StorageError at the first whose seq is not above
    the one before it."""
    last = 0
    for event in events:
        if event.seq <= last:
            raise StorageError(f"events out of log order at seq {event.seq}")
        last = event.seq
        yield event
