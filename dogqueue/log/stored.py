"""Decoding what a log holds: a row that does not decode (a corrupt or foreign file) is
a CorruptLog error (a StorageError) naming the row, never a raw decoder error."""

from __future__ import annotations

import msgspec

from dogqueue.core.codec import decode_event, decode_event_unstamped, decode_job
from dogqueue.core.errors import CorruptLog
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo

# What msgspec raises for bytes that are not a valid encoding of the type, and what it
# raises for a stored value that is not bytes at all.
UNDECODABLE = (msgspec.MsgspecError, TypeError, ValueError)


def stored_event(data: object, seq: int) -> AnyEvent:
    """The event stored at log position `seq`."""
    try:
        return decode_event(data, seq)  # type: ignore[arg-type]
    except UNDECODABLE as error:
        raise CorruptLog(
            f"corrupt database: the event at seq {seq} does not decode: {error}"
        ) from error


def stored_event_unstamped(data: object, seq: int) -> AnyEvent:
    """The event stored at log position `seq`, without its `seq` (0): for a fold that
    reads the position of a few kinds only, and stamps those itself."""
    try:
        return decode_event_unstamped(data)  # type: ignore[arg-type]
    except UNDECODABLE as error:
        raise CorruptLog(
            f"corrupt database: the event at seq {seq} does not decode: {error}"
        ) from error


def stored_job(data: object, which: str) -> JobInfo:
    """The projected job state stored in the `jobs` row described by `which`."""
    try:
        return decode_job(data)  # type: ignore[arg-type]
    except UNDECODABLE as error:
        raise CorruptLog(
            f"corrupt database: the projection row of {which} does not decode: {error}"
            " (`dogqueue verify` compares the projection with the log)"
        ) from error
