"""Clocks: the real one, and a fake one for tests (never `sleep` in a test)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dogqueue.core.errors import InvalidInput

#: A zero-argument callable returning an aware UTC datetime.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current wall-clock time, aware, in UTC."""
    return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to; safe to read from any thread."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime(2030, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise InvalidInput("start", "must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by `delta` (not backward) and return the new time."""
        if delta < timedelta(0):
            raise InvalidInput("delta", "a clock does not move backward")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to `when` (aware; not earlier than now)."""
        if when.tzinfo is None:
            raise InvalidInput("when", "must be timezone-aware")
        with self._lock:
            when = when.astimezone(UTC)
            if when < self._now:
                raise InvalidInput("when", "a clock does not move backward")
            self._now = when

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
