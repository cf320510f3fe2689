"""Multi-tenant: every call is scoped to a tenant; ids and idempotency keys never leak.

Run: python examples/multi_tenant.py
"""

from __future__ import annotations

import asyncio

from dogqueue import JobAlreadyExists, JobMessage, JobNotFound, QueueCtx
from dogqueue.backend.memory import MemoryBackend


async def main() -> None:
    async with MemoryBackend() as backend:
        acme, globex = QueueCtx("acme"), QueueCtx("globex")
        invoice = JobMessage(job_type="invoice", payload_bytes=b'{"n":1}', idempotency_key="inv-1")

        acme_job = await backend.enqueue(acme, invoice)
        globex_job = await backend.enqueue(globex, invoice)  # same key, other tenant: fine
        print("two tenants, two jobs:", acme_job != globex_job)

        try:
            await backend.enqueue(acme, invoice)
        except JobAlreadyExists as duplicate:
            print("duplicate refused; existing job is", duplicate.job_id == acme_job)

        try:
            await backend.get_job(globex, acme_job)
        except JobNotFound:
            print("acme's job is invisible to globex")

        lease = await backend.dequeue(globex, ["default"])
        assert lease is not None
        print("globex leased its own job:", lease.job_id == globex_job)


if __name__ == "__main__":
    asyncio.run(main())
