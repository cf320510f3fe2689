"""Bytes in the log: one msgpack encoder and decoder per type, built once."""

from __future__ import annotations

import msgspec

from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo

_encoder = msgspec.msgpack.Encoder()
_event_decoder = msgspec.msgpack.Decoder(AnyEvent)
_job_decoder = msgspec.msgpack.Decoder(JobInfo)
_replace = msgspec.structs.replace


def encode_event(event: AnyEvent) -> bytes:
    """The canonical bytes of an event (its `seq` excluded: the log assigns it)."""
    if event.seq:
        event = _replace(event, seq=0)
    return _encoder.encode(event)


def decode_event(data: bytes, seq: int) -> AnyEvent:
    """The event stored at log position `seq`."""
    event: AnyEvent = _replace(_event_decoder.decode(data), seq=seq)
    return event


def decode_event_unstamped(data: bytes) -> AnyEvent:
    """An event from its stored bytes, its `seq` left 0 (see `decode_event`)."""
    event: AnyEvent = _event_decoder.decode(data)
    return event


def encode_job(job: JobInfo) -> bytes:
    """The bytes of a projected job state."""
    return _encoder.encode(job)


def decode_job(data: bytes) -> JobInfo:
    """A projected job state from its bytes."""
    return _job_decoder.decode(data)
