"""Hypothesis strategies for the pure core: messages, commands and command sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypedDict

from hypothesis import strategies as st

from dogqueue.core.commands import (
    AnyCommand,
    Cancel,
    Complete,
    Expire,
    ExtendLease,
    Fail,
    Lease,
    Release,
    Requeue,
    SettleParent,
)
from dogqueue.core.message import JobMessage
from dogqueue.core.status import JobPriority

START = datetime(2030, 1, 1, tzinfo=UTC)

names = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1, max_size=20
)
utc_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
messages = st.builds(
    JobMessage,
    job_type=names,
    payload_bytes=st.binary(max_size=64),
    codec=st.sampled_from(["json", "msgpack"]),
    queue=names,
    priority=st.sampled_from(list(JobPriority)),
    max_retries=st.integers(0, 1000) | st.integers(0, 3),
    run_at=st.none() | utc_times,
    idempotency_key=st.none() | names,
    after=st.lists(st.sampled_from(["p1", "p2", "p3"]), unique=True).map(tuple),
    on_parent_failure=st.sampled_from(["cancel", "run"]),
)
#: The parents a message's `after` may name.
PARENTS = ("p1", "p2", "p3")
durations = st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=2))
draws = st.floats(0.0, 1.0)
#: How a command's token relates to the job's current one.
token_offsets = st.sampled_from([0, 0, 0, -1, 1])

#: One step of a command sequence: (kind, seconds since the previous step, token offset,
#: retry flag, duration, draw, include_canceled).
command_steps = st.tuples(
    st.sampled_from(
        ["lease", "heartbeat", "complete", "fail", "cancel", "expire", "release", "requeue"]
        + ["parent"] * 3
    ),
    st.integers(0, 400) | st.just(0),
    token_offsets,
    st.booleans(),
    durations,
    draws,
    st.booleans(),
)


class _Ids(TypedDict):
    tenant_id: str
    job_id: str
    at: datetime


def command_of(
    step: tuple[str, int, int, bool, timedelta, float, bool],
    tenant_id: str,
    job_id: str,
    at: datetime,
    token: int,
) -> AnyCommand:
    """The command a step describes, for a job whose current token is `token`."""
    kind, _, offset, retry, duration, draw, include_canceled = step
    ids = _Ids(tenant_id=tenant_id, job_id=job_id, at=at)
    token += offset
    match kind:
        case "lease":
            return Lease(**ids, duration=duration)
        case "heartbeat":
            return ExtendLease(**ids, token=token, duration=duration)
        case "complete":
            return Complete(**ids, token=token, result=b"done" if retry else None)
        case "fail":
            return Fail(**ids, token=token, error="boom", retry=retry, draw=draw)
        case "cancel":
            return Cancel(**ids)
        case "expire":
            return Expire(**ids, draw=draw)
        case "release":
            return Release(**ids, token=token)
        case "parent":  # a parent ended: which one, and how, from the step's draws
            status = "completed" if retry else ("failed" if include_canceled else "canceled")
            parent = PARENTS[min(int(draw * len(PARENTS)), len(PARENTS) - 1)]
            return SettleParent(**ids, parent_id=parent, parent_status=status, reason="boom")
        case _:
            return Requeue(**ids, include_canceled=include_canceled)
