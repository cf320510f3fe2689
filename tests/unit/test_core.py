"""The pure core on its own: retry policy, decide's refusals, evolve's guards, the codec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from dogqueue import (
    Completed,
    InvalidTransition,
    JobCanceled,
    JobMessage,
    JobStatus,
    LeaseLost,
    QueueConfig,
    fold,
)
from dogqueue.core.codec import decode_event, encode_event
from dogqueue.core.commands import Cancel, Complete, Enqueue, Expire, Lease
from dogqueue.core.decide import decide
from dogqueue.core.evolve import evolve
from dogqueue.core.retry import backoff, jittered, retry_delay

T0 = datetime(2030, 1, 1, tzinfo=UTC)
CONFIG = QueueConfig()
SECOND = timedelta(seconds=1)


def enqueued() -> list:  # type: ignore[type-arg]
    message = JobMessage(job_type="t", payload_bytes=b"{}")
    events = decide(None, Enqueue(tenant_id="a", job_id="j", at=T0, message=message), CONFIG)
    return [msgspec.structs.replace(events[0], seq=1)]


def test_backoff_doubles_then_caps() -> None:
    assert [backoff(n, SECOND, timedelta(seconds=10)) for n in range(1, 7)] == [
        SECOND,
        2 * SECOND,
        4 * SECOND,
        8 * SECOND,
        10 * SECOND,
        10 * SECOND,
    ]
    assert backoff(10**6, SECOND, timedelta(hours=1)) == timedelta(hours=1)
    assert backoff(5, timedelta(0), timedelta(hours=1)) == timedelta(0)


def test_jitter_stays_within_half_and_full() -> None:
    delay = timedelta(seconds=7)
    assert jittered(delay, 0.0) == delay / 2
    assert jittered(delay, 1.0) == delay
    for draw in (0.1, 0.33, 0.999):
        assert delay / 2 <= jittered(delay, draw) <= delay
    assert retry_delay(1000, SECOND, timedelta.max, 1.0) <= timedelta.max


def test_decide_refuses_without_deciding_anything() -> None:
    state = fold(enqueued())
    leased = evolve(
        state, decide(state, Lease(tenant_id="a", job_id="j", at=T0, duration=SECOND), CONFIG)[0]
    )
    with pytest.raises(LeaseLost):
        decide(leased, Complete(tenant_id="a", job_id="j", at=T0, token=99), CONFIG)
    with pytest.raises(LeaseLost):
        decide(leased, Complete(tenant_id="a", job_id="j", at=T0 + SECOND, token=1), CONFIG)
    with pytest.raises(InvalidTransition):
        decide(leased, Expire(tenant_id="a", job_id="j", at=T0), CONFIG)
    canceled = evolve(leased, decide(leased, Cancel(tenant_id="a", job_id="j", at=T0), CONFIG)[0])
    assert canceled.status is JobStatus.CANCELED
    with pytest.raises(JobCanceled):
        decide(canceled, Complete(tenant_id="a", job_id="j", at=T0, token=1), CONFIG)
    assert decide(canceled, Cancel(tenant_id="a", job_id="j", at=T0), CONFIG) == []


def test_evolve_rejects_events_that_do_not_apply() -> None:
    state = fold(enqueued())
    completed = Completed(tenant_id="a", job_id="j", version=2, at=T0, token=1)
    with pytest.raises(InvalidTransition):
        evolve(state, completed)  # not leased
    with pytest.raises(InvalidTransition):
        evolve(None, completed)
    with pytest.raises(InvalidTransition):
        evolve(state, enqueued()[0])  # enqueued twice
    other = msgspec.structs.replace(completed, job_id="k")
    with pytest.raises(InvalidTransition):
        evolve(state, other)


def test_codec_round_trip_keeps_seq_out_of_the_bytes() -> None:
    event = enqueued()[0]
    data = encode_event(event)
    assert encode_event(msgspec.structs.replace(event, seq=77)) == data
    assert decode_event(data, 1) == event
    assert event.type == "enqueued"
