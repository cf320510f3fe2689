"""Time travel: the state of a job or a tenant as of a log position or a moment,
folded from the log (nothing is stored for it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from dogqueue.core.errors import InvalidInput
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey, rebuild


class AsOf:
    """A point in a log's past: a position, a moment, or both (events must be at or
    before each). `AsOf()` means now. The position is of the events it is applied to:
    a tenant position for a tenant's events (history, `tenant_events`), a log position
    for the whole log."""

    def __init__(self, *, seq: int | None = None, at: datetime | None = None) -> None:
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
            raise InvalidInput("as_of", "a log position must be an int >= 0")
        if at is not None and (not isinstance(at, datetime) or at.tzinfo is None):
            raise InvalidInput("as_of", "a moment must be a timezone-aware datetime")
        self.seq = seq
        self.at = at

    @classmethod
    def parse(cls, text: str) -> AsOf:
        """From the command line: a log position ("1234") or an ISO 8601 moment
        ("2030-01-01T12:00:00+00:00"; without a zone, UTC is assumed)."""
        text = text.strip()
        if text.isdigit():
            return cls(seq=int(text))
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as error:
            raise InvalidInput(
                "as_of", f"{text!r} is neither a log position nor an ISO 8601 time"
            ) from error
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return cls(at=moment)

    def includes(self, event: AnyEvent) -> bool:
        """True when `event` had happened at this point."""
        if self.seq is not None and event.seq > self.seq:
            return False
        return self.at is None or event.at <= self.at

    @property
    def is_now(self) -> bool:
        """True for the present (no bound)."""
        return self.seq is None and self.at is None

    def __repr__(self) -> str:
        return f"AsOf(seq={self.seq!r}, at={self.at!r})"


def events_as_of(events: Iterable[AnyEvent], as_of: AsOf) -> list[AnyEvent]:
    """The events that had happened at `as_of`, in log order: each job's history is cut
    at its first event past the point, so the result holds a prefix of every job's
    history. Clocks that differ between writers may stamp a later event of a job with an
    earlier time; that event is left out with everything after it, never folded over a
    hole."""
    ended: set[JobKey] = set()
    kept: list[AnyEvent] = []
    for event in events:
        key = (event.tenant_id, event.job_id)
        if key in ended:
            continue
        if as_of.includes(event):
            kept.append(event)
        else:
            ended.add(key)
    return kept


def jobs_as_of(events: Iterable[AnyEvent], as_of: AsOf) -> dict[JobKey, JobInfo]:
    """Every job's state at `as_of`, folded from `events` (a whole log, or one tenant's)."""
    return rebuild(events_as_of(events, as_of))


def job_as_of(history: Iterable[AnyEvent], as_of: AsOf) -> JobInfo | None:
    """One job's state at `as_of` from its history; None if it did not exist yet."""
    jobs = jobs_as_of(history, as_of)
    return next(iter(jobs.values()), None)
