"""The pure core: event encode/decode, decide, evolve, and replaying a whole log."""

from __future__ import annotations

from typing import Any

import pytest

from bench.workload import CONFIG, CTX, LEASE, MESSAGE, START, apply, lifecycle_events, log_of
from dogqueue import AnyEvent, rebuild
from dogqueue.core.codec import decode_event, encode_event
from dogqueue.core.commands import Enqueue, Lease
from dogqueue.core.decide import decide
from dogqueue.core.evolve import evolve

EVENTS = lifecycle_events("job-000000001", 1)


@pytest.mark.parametrize("event", EVENTS, ids=[event.type for event in EVENTS])
def test_encode_event(benchmark: Any, event: AnyEvent) -> None:
    data = benchmark(encode_event, event)
    assert decode_event(data, event.seq) == event


@pytest.mark.parametrize("event", EVENTS, ids=[event.type for event in EVENTS])
def test_decode_event(benchmark: Any, event: AnyEvent) -> None:
    data = encode_event(event)
    assert benchmark(decode_event, data, event.seq) == event


def test_decide_enqueue(benchmark: Any) -> None:
    command = Enqueue(tenant_id=CTX.tenant_id, job_id="job-1", at=START, message=MESSAGE)
    assert len(benchmark(decide, None, command, CONFIG)) == 1


def test_decide_lease(benchmark: Any) -> None:
    enqueue = Enqueue(tenant_id=CTX.tenant_id, job_id="job-1", at=START, message=MESSAGE)
    state, _ = apply(None, enqueue, 1)
    command = Lease(tenant_id=CTX.tenant_id, job_id="job-1", at=START, duration=LEASE)
    events = benchmark(decide, state, command, CONFIG)
    assert events[0].type == "leased"


def test_evolve_leased(benchmark: Any) -> None:
    state = evolve(None, EVENTS[0])
    after = benchmark(evolve, state, EVENTS[1])
    assert after.status == "leased"


def test_fold_log(benchmark: Any, fold_events: int) -> None:
    """Replay: the projection of a log of finished jobs from its events."""
    events = log_of(fold_events // 3)
    jobs = benchmark(rebuild, events)
    assert len(jobs) == fold_events // 3
    benchmark.extra_info["events"] = len(events)


def test_decode_and_fold_log(benchmark: Any, fold_events: int) -> None:
    """Replay from the stored bytes, as rebuilding a SQLite projection does."""
    stored = [(encode_event(event), event.seq) for event in log_of(fold_events // 3)]

    def replay() -> int:
        return len(rebuild(decode_event(data, seq) for data, seq in stored))

    assert benchmark(replay) == fold_events // 3
    benchmark.extra_info["events"] = len(stored)
