"""A job's history as read by people: one row per event, except that a run's heartbeats
fold into one row, and every row knows which run (lease) of the job it belongs to.
Runs count every lease that ran, across operator retries; a lease given back unfinished
(shutdown, a deploy hold) is not a run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dogqueue.core.events import AnyEvent, Heartbeat, Leased, Released


@dataclass(frozen=True)
class Heartbeats:
    """A run's heartbeats, folded: how many, the first and last, and the latest
    progress reported."""

    count: int
    first: Heartbeat
    last: Heartbeat
    progress: float | None
    progress_message: str | None

    def __str__(self) -> str:
        text = (
            f"{self.count} heartbeat{'s' if self.count != 1 else ''}, last {_clock(self.last.at)}"
        )
        if self.progress is not None:
            text += f", progress {100 * self.progress:.0f}%"
        if self.progress_message:
            text += f" ({self.progress_message})"
        return text


@dataclass(frozen=True)
class TimelineRow:
    """One row: an event (or a run's heartbeats) and the run it belongs to (0 before
    the first lease)."""

    event: AnyEvent | Heartbeats
    run: int

    @property
    def at(self) -> datetime:
        """When the row's event happened (a folded row: its last heartbeat)."""
        return self.event.last.at if isinstance(self.event, Heartbeats) else self.event.at

    @property
    def kind(self) -> str:
        """The event's type; "heartbeats" for a folded row."""
        return "heartbeats" if isinstance(self.event, Heartbeats) else self.event.type


def timeline(history: Sequence[AnyEvent]) -> list[TimelineRow]:
    """The rows of a job's history, in order."""
    rows: list[TimelineRow] = []
    run = 0
    folded: int | None = None  # index of the current run's heartbeats row
    for event in history:
        if isinstance(event, Heartbeat):
            if folded is None:
                folded = len(rows)
                rows.append(TimelineRow(_fold(None, event), run))
            else:
                previous = rows[folded].event
                assert isinstance(previous, Heartbeats)
                rows[folded] = TimelineRow(_fold(previous, event), run)
            continue
        if isinstance(event, Leased):
            run += 1
            folded = None
        rows.append(TimelineRow(event, run))
        if isinstance(event, Released):
            run -= 1
    return rows


def runs(history: Sequence[AnyEvent]) -> int:
    """How many times the job ran: its leases, less those given back unfinished."""
    return sum(isinstance(e, Leased) for e in history) - sum(
        isinstance(e, Released) for e in history
    )


def _fold(before: Heartbeats | None, beat: Heartbeat) -> Heartbeats:
    if before is None:
        return Heartbeats(1, beat, beat, beat.progress, beat.progress_message)
    reported = beat.progress is not None
    return Heartbeats(
        before.count + 1,
        before.first,
        beat,
        beat.progress if reported else before.progress,
        beat.progress_message if reported else before.progress_message,
    )


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S")
