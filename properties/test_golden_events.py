"""Schema evolution: event bytes written by earlier versions must still decode.

The files in properties/golden/ were written once and are never regenerated: if one stops
decoding to its sample below, a change broke the stored log of every existing user.
`enqueued-minimal` is an event as the first schema wrote it: only the fields without
defaults, as every later field must be optional.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from dogqueue.core.codec import decode_event, encode_event
from dogqueue.core.events import (
    AnyEvent,
    Canceled,
    Completed,
    Enqueued,
    Expired,
    Failed,
    Heartbeat,
    Leased,
    ParentFinished,
    Released,
    Requeued,
)
from dogqueue.core.message import JobMessage
from dogqueue.core.status import JobPriority

GOLDEN = Path(__file__).parent / "golden"
AT = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
LATER = datetime(2030, 1, 1, 12, 5, tzinfo=UTC)
TENANT = "acme"
JOB = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"

SAMPLES: dict[str, AnyEvent] = {
    "enqueued": Enqueued(
        tenant_id=TENANT,
        job_id=JOB,
        version=1,
        at=AT,
        message=JobMessage(
            job_type="snapshot",
            payload_bytes=b'{"inbox":"a@b.c"}',
            queue="mail",
            priority=JobPriority.HIGH,
            max_retries=5,
            run_at=LATER,
            idempotency_key="snap-1",
        ),
        trace_context={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    ),
    "enqueued-minimal": Enqueued(
        tenant_id=TENANT,
        job_id=JOB,
        version=1,
        at=AT,
        message=JobMessage(job_type="cleanup", payload_bytes=b"{}"),
    ),
    "leased": Leased(
        tenant_id=TENANT, job_id=JOB, version=2, at=AT, token=1, attempt=1, expires_at=LATER
    ),
    "heartbeat": Heartbeat(
        tenant_id=TENANT, job_id=JOB, version=3, at=AT, token=1, expires_at=LATER
    ),
    "completed": Completed(tenant_id=TENANT, job_id=JOB, version=4, at=AT, token=1, result=b'"ok"'),
    "failed": Failed(
        tenant_id=TENANT, job_id=JOB, version=4, at=AT, token=1, error="flaky API", retry_at=LATER
    ),
    "failed-final": Failed(
        tenant_id=TENANT, job_id=JOB, version=4, at=AT, token=1, error="bad payload"
    ),
    "canceled": Canceled(tenant_id=TENANT, job_id=JOB, version=3, at=AT),
    "expired": Expired(tenant_id=TENANT, job_id=JOB, version=3, at=AT, token=1, retry_at=LATER),
    "released": Released(tenant_id=TENANT, job_id=JOB, version=3, at=AT, token=1),
    "requeued": Requeued(tenant_id=TENANT, job_id=JOB, version=5, at=AT),
}
PARENT = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2a"
OTHER_PARENT = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a29"

#: Events as the workflows release (dependencies between jobs) first wrote them.
WORKFLOW_SAMPLES: dict[str, AnyEvent] = {
    "enqueued-after": Enqueued(
        tenant_id=TENANT,
        job_id=JOB,
        version=1,
        at=AT,
        message=JobMessage(
            job_type="merge",
            payload_bytes=b"{}",
            run_at=AT,
            after=(OTHER_PARENT, PARENT),
            on_parent_failure="run",
        ),
        waiting_for=(PARENT,),
    ),
    "parent-finished": ParentFinished(
        tenant_id=TENANT, job_id=JOB, version=2, at=LATER, parent_id=PARENT,
        parent_status="completed",
    ),
    "parent-finished-failed": ParentFinished(
        tenant_id=TENANT, job_id=JOB, version=2, at=LATER, parent_id=PARENT,
        parent_status="failed", reason="disk full",
    ),
}  # fmt: skip

#: Each file name prefix and its samples.
GENERATIONS = {"v1": SAMPLES, "workflows": WORKFLOW_SAMPLES}


def write_samples(prefix: str) -> None:
    """Write one generation's golden files (done once, when its events were new; never
    again)."""
    for name, event in GENERATIONS[prefix].items():
        (GOLDEN / f"{prefix}-{name}.msgpack").write_bytes(encode_event(event))


@pytest.mark.parametrize(
    ("prefix", "name"), [(p, name) for p, samples in GENERATIONS.items() for name in samples]
)
def test_old_event_bytes_still_decode(prefix: str, name: str) -> None:
    data = (GOLDEN / f"{prefix}-{name}.msgpack").read_bytes()
    event = decode_event(data, 7)
    sample = GENERATIONS[prefix][name]
    assert event == msgspec.structs.replace(sample, seq=7)
    assert event.type == sample.type


def test_every_event_type_has_a_golden_sample() -> None:
    samples = [*SAMPLES.values(), *WORKFLOW_SAMPLES.values()]
    assert {event.type for event in samples} == {
        "enqueued", "leased", "heartbeat", "completed", "failed",
        "canceled", "expired", "released", "requeued", "parent_finished",
    }  # fmt: skip


def test_events_of_before_workflows_decode_with_no_dependencies() -> None:
    event = decode_event((GOLDEN / "v1-enqueued.msgpack").read_bytes(), 1)
    assert isinstance(event, Enqueued)
    assert event.message.after == () and event.waiting_for == ()
    assert event.message.on_parent_failure == "cancel"
