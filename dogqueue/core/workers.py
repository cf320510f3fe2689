"""A worker's presence: the small record each worker keeps current about itself, and
what an operator reads from it (live, stopped, or gone quiet).

Presence is not job history, so it is not in the log: a record per worker, replaced at
every announcement. Appending an event every few seconds per worker would grow every
tenant's chain for ever with nothing an audit needs, and a worker serves many tenants.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from dogqueue.core import validation as check
from dogqueue.core.errors import InvalidInput

#: How often a worker announces itself.
ANNOUNCE_INTERVAL = timedelta(seconds=10)
#: A worker not heard from for this long (three announcements) is presumed gone.
GONE_AFTER = 3 * ANNOUNCE_INTERVAL
#: How long stopped and gone workers are still listed.
RECENT = timedelta(hours=1)
#: Records not refreshed for this long are forgotten at the next announcement.
FORGET_AFTER = timedelta(days=1)


class WorkerPresence(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a worker says about itself, as of `last_seen` (the backend's clock)."""

    #: Unique per worker run (host, pid and a random part).
    worker_id: str
    host: str
    pid: int
    #: The queues served ("*": every queue in use).
    queues: tuple[str, ...]
    #: The tenants served; None: every tenant with ready jobs.
    tenants: tuple[str, ...] | None = None
    concurrency: int
    #: Jobs running at `last_seen`.
    running: int
    #: The dogqueue version the worker runs.
    version: str
    started_at: datetime
    last_seen: datetime
    #: When the worker stopped cleanly (None while it runs, or if it died).
    stopped_at: datetime | None = None


class WorkerState(enum.StrEnum):
    """What an operator makes of a presence record."""

    #: Announced itself recently and has not stopped.
    LIVE = "live"
    #: Said it stopped.
    STOPPED = "stopped"
    #: Not heard from for GONE_AFTER, without saying it stopped (killed, lost host).
    GONE = "gone"


def worker_state(presence: WorkerPresence, now: datetime) -> WorkerState:
    """The state of the worker at `now`."""
    if presence.stopped_at is not None:
        return WorkerState.STOPPED
    if now - presence.last_seen > GONE_AFTER:
        return WorkerState.GONE
    return WorkerState.LIVE


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(WorkerPresence)


def encode_presence(presence: WorkerPresence) -> bytes:
    """The stored form of a presence record."""
    return _encoder.encode(presence)


def decode_presence(data: bytes) -> WorkerPresence:
    """A presence record from its stored form."""
    return _decoder.decode(data)


def stored_presence(presence: object) -> tuple[str, datetime, bytes]:
    """The worker id, last-seen time (UTC) and stored form of a presence record;
    InvalidInput naming the field that is wrong."""
    if not isinstance(presence, WorkerPresence):
        raise InvalidInput("presence", "must be a WorkerPresence")
    check.check_name("worker_id", presence.worker_id)
    seen = check.check_aware("last_seen", presence.last_seen).astimezone(UTC)
    return presence.worker_id, seen, encode_presence(presence)


def read_presences(stored: Iterable[bytes]) -> list[WorkerPresence]:
    """Presence records from their stored forms, oldest start first; a damaged one is
    skipped (it is not the log, and its worker rewrites it within ANNOUNCE_INTERVAL)."""
    found = []
    for data in stored:
        try:
            found.append(decode_presence(data))
        except msgspec.DecodeError:
            continue
    return sorted(found, key=lambda p: (p.started_at, p.worker_id))
