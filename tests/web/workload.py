"""A small queue for the dashboard tests: two tenants, jobs in every status, and stored
text that tries to inject HTML and terminal escapes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from dogqueue.backend.contract import Backend
from dogqueue.core.message import JobMessage, QueueCtx

ADMIN_TOKEN = "admin-token-0123456789abcdef"
ACME_TOKEN = "acme-token-0123456789abcdef"
GLOBEX_TOKEN = "globex-token-0123456789abcdef"
TOKENS_TEXT = f"""# scope token name
admin {ADMIN_TOKEN} ops
tenant:acme {ACME_TOKEN} acme-ops
tenant:globex {GLOBEX_TOKEN}
"""
#: Stored in a failed job's error and payload: must be shown as text, never obeyed.
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">\x1b[31mred\x07'


@dataclass
class Workload:
    """The ids of the jobs the tests look at."""

    acme_waiting: str
    acme_dead: str
    acme_done: str
    globex_waiting: str


async def populate(backend: Backend) -> Workload:
    """Jobs of acme (dead with a hostile error, completed, waiting) and globex."""
    acme, globex = QueueCtx("acme"), QueueCtx("globex")
    dead = await backend.enqueue(
        acme,
        JobMessage(
            job_type="thumbnail",
            payload_bytes=HOSTILE.encode(),
            max_retries=0,
            idempotency_key="order-42",
        ),
    )
    done = await backend.enqueue(acme, JobMessage(job_type="email", payload_bytes=b"{}"))
    first = await backend.dequeue(acme, ["default"], lease_duration=timedelta(minutes=5))
    second = await backend.dequeue(acme, ["default"], lease_duration=timedelta(minutes=5))
    assert first is not None and first.job_id == dead
    assert second is not None and second.job_id == done
    await backend.ack_fail(acme, first, HOSTILE, retry=False)
    await backend.ack_complete(acme, second, b'"ok"')
    waiting = await backend.enqueue(
        acme, JobMessage(job_type="email", payload_bytes=b'{"to": "a@example.com"}')
    )
    other = await backend.enqueue(globex, JobMessage(job_type="report", payload_bytes=b"{}"))
    return Workload(waiting, dead, done, other)
