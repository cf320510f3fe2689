"""Times in SQL columns: integer microseconds since the Unix epoch, UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(when: datetime) -> int:
    """`when` (aware) as microseconds since the epoch."""
    return (when - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """An aware UTC datetime from microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=micros)
