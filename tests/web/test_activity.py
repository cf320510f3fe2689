"""The overview's rates come from the log: a dashboard started now still shows the last
hour's completions and dead letters, and later looks fold only the new events."""

from __future__ import annotations

from datetime import timedelta

import httpx

from dogqueue import FakeClock, JobMessage, QueueCtx
from dogqueue.backend.base import EngineBackend
from dogqueue.web import TokenStore, create_app
from dogqueue.web.activity import RecentActivity
from tests.web.workload import ADMIN_TOKEN, TOKENS_TEXT

ACME = QueueCtx("acme")


async def _run(backend: EngineBackend, *, complete: int, dead: int, retried: int = 0) -> None:
    """Finish new jobs now: `complete` completed, `dead` failed for good, `retried`
    failed with a retry scheduled (no dead letter)."""
    plan = ["dead"] * dead + ["retried"] * retried + ["complete"] * complete
    messages = [
        JobMessage(job_type=kind, payload_bytes=b"{}", max_retries=0 if kind == "dead" else 3)
        for kind in plan
    ]
    created = set(await backend.enqueue_many(ACME, messages))
    for lease in await backend.dequeue_many(ACME, ["default"], 1000):
        if lease.job_id not in created:
            await backend.release(ACME, lease)
        elif lease.message.job_type == "complete":
            await backend.ack_complete(ACME, lease)
        else:  # a dead one has no retry left
            await backend.ack_fail(ACME, lease, "boom", retry=True)


async def test_rates_are_folded_from_the_logs_last_hour(
    backend: EngineBackend, clock: FakeClock
) -> None:
    await _run(backend, complete=4, dead=3)  # two hours before "now": outside the window
    clock.advance(timedelta(minutes=115))
    await _run(backend, complete=5, dead=2, retried=1)
    clock.advance(timedelta(minutes=2))
    await _run(backend, complete=10, dead=0)
    clock.advance(timedelta(minutes=1))
    now = clock()

    activity = RecentActivity()
    await activity.refresh(backend, now)
    assert activity.dead_in_window("acme", now) == 2  # the retried failure is no dead letter
    assert activity.completed_per_minute("acme", now) == (5 + 10) / 10
    assert sum(activity.per_minute("acme", now, "completed")) == 15
    assert activity.per_minute("acme", now, "dead")[-4] == 2  # three minutes ago
    assert activity.completed_per_minute("globex", now) == 0.0

    position = activity.position
    await _run(backend, complete=2, dead=1)
    await activity.refresh(backend, now)
    assert activity.position is not None and position is not None
    assert activity.position > position
    assert activity.dead_in_window("acme", now) == 3
    assert sum(activity.per_minute("acme", now, "completed")) == 17

    later = now + timedelta(hours=2)
    await activity.refresh(backend, later)  # the old minutes are forgotten
    assert activity.dead_in_window("acme", later) == 0
    assert sum(activity.per_minute("acme", later, "completed")) == 0


async def test_a_dashboard_started_now_shows_the_hours_dead_letters(
    backend: EngineBackend, clock: FakeClock
) -> None:
    await _run(backend, complete=3, dead=2)
    clock.advance(timedelta(minutes=5))
    app = create_app(backend, TokenStore.parse(TOKENS_TEXT))
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1:8080", headers=headers
    ) as http:
        page = (await http.get("/")).text
    assert '<td class="new-dead">2</td>' in page
    assert '<td class="rate">0.3</td>' in page  # 3 completions over the last 10 minutes
