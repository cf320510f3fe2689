"""A client process on a PostgreSQL queue, for the multi-process tests.

python -m tests.integration.pg_client SCHEMA drain TASKS TENANTS...
    lease and complete until every tenant is empty; print each "job_id token"
python -m tests.integration.pg_client SCHEMA enqueue-key KEY
    enqueue one job with idempotency key KEY; print "created ID" or "exists ID"
python -m tests.integration.pg_client SCHEMA lease-and-ack LEASE_SECONDS
    lease one job, print "leased ID", wait for a line on stdin, then ack it and print
    "completed" or the error's class name
python -m tests.integration.pg_client SCHEMA churn JOBS
    enqueue, lease and complete JOBS jobs, 16 at a time
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from dogqueue import JobAlreadyExists, JobMessage, QueueCtx
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.core.errors import QueueError


def message(job_type: str = "work", key: str | None = None) -> JobMessage:
    """A small valid message."""
    return JobMessage(job_type=job_type, payload_bytes=b"{}", idempotency_key=key)


async def drain(backend: PostgresBackend, tasks: int, tenants: list[str]) -> None:
    leased: list[str] = []

    async def consume(offset: int) -> None:
        idle_rounds = 0
        while idle_rounds < 2:
            got = 0
            for i in range(len(tenants)):
                ctx = QueueCtx(tenants[(offset + i) % len(tenants)])
                for lease in await backend.dequeue_many(ctx, ["default"], 8):
                    leased.append(f"{lease.job_id} {lease.lease_token}")
                    await backend.ack_complete(ctx, lease)
                    got += 1
            idle_rounds = 0 if got else idle_rounds + 1

    await asyncio.gather(*(consume(n) for n in range(tasks)))
    print("\n".join(leased), flush=True)


async def enqueue_key(backend: PostgresBackend, key: str) -> None:
    try:
        job_id = await backend.enqueue(QueueCtx("acme"), message(key=key))
        print("created", job_id, flush=True)
    except JobAlreadyExists as error:
        print("exists", error.job_id, flush=True)


async def lease_and_ack(backend: PostgresBackend, seconds: float) -> None:
    ctx = QueueCtx("acme")
    lease = await backend.dequeue(ctx, ["default"], lease_duration=timedelta(seconds=seconds))
    assert lease is not None
    print("leased", lease.job_id, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    try:
        await backend.ack_complete(ctx, lease)
        print("completed", flush=True)
    except QueueError as error:
        print(type(error).__name__, flush=True)


async def churn(backend: PostgresBackend, jobs: int) -> None:
    ctx = QueueCtx("acme")

    async def one(n: int) -> None:
        for _ in range(n):
            await backend.enqueue(ctx, message())
            for lease in await backend.dequeue_many(ctx, ["default"], 1):
                await backend.ack_complete(ctx, lease)

    await asyncio.gather(*(one(jobs // 16) for _ in range(16)))


async def main(schema: str, mode: str, args: list[str]) -> None:
    async with PostgresBackend(default_dsn(), schema=schema) as backend:
        if mode == "drain":
            await drain(backend, int(args[0]), args[1:])
        elif mode == "enqueue-key":
            await enqueue_key(backend, args[0])
        elif mode == "lease-and-ack":
            await lease_and_ack(backend, float(args[0]))
        elif mode == "churn":
            await churn(backend, int(args[0]))
        else:
            raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
