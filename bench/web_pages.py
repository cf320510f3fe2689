"""How fast the dashboard answers on a 1,000,000-event log: the overview, a tenant's
job list (first page, a later page, dead letters, a search) and a job page, rendered by the
real app in-process (no network). A measurement, not a test: nothing fails on a time.

    python bench/web_pages.py                  # builds bench/results/web-1m.db once
    python bench/web_pages.py --events 30000   # a quick look
    python bench/web_pages.py --db 'postgresql://postgres@127.0.0.1/postgres?schema=web1m'
        # the same on PostgreSQL (built once into that schema, reused while it has jobs)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import timedelta
from pathlib import Path

import httpx

from dogqueue import JobMessage, QueueCtx
from dogqueue.backend import locate
from dogqueue.backend.contract import Backend
from dogqueue.web import TokenStore, create_app

TOKEN = "bench-admin-token-0123456789"
#: Jobs are spread over tenants unevenly: the list of the biggest is the hard case.
TENANTS = ("big", "big", "big", "big", "big", "big", "big", "mid", "mid", "small")
BATCH = 1_000


async def build(db: str, events: int) -> None:
    """A log of about `events` events: most jobs completed (3 events), 2% dead letters,
    some leased and some waiting."""
    written = 0
    number = 0
    async with locate.open_backend(db) as backend:
        while written < events:
            tenant = QueueCtx(TENANTS[number % len(TENANTS)])
            messages = [
                JobMessage(
                    job_type=("email", "resize", "report")[(number + i) % 3],
                    payload_bytes=b'{"user_id": 12345}',
                    queue="default" if i % 4 else "bulk",
                    max_retries=0,
                    idempotency_key=f"order-{number + i}" if i % 10 == 0 else None,
                )
                for i in range(BATCH)
            ]
            number += BATCH
            await backend.enqueue_many(tenant, messages)
            leases = await backend.dequeue_many(
                tenant, ["default", "bulk"], BATCH - 50, lease_duration=timedelta(hours=1)
            )
            finishing = leases[:-50]
            dead = {lease.job_id for lease in finishing[::50]}
            await asyncio.gather(
                *(
                    backend.ack_fail(tenant, lease, "upstream said 503", retry=False)
                    if lease.job_id in dead
                    else backend.ack_complete(tenant, lease, b'"ok"')
                    for lease in finishing
                )
            )
            written += BATCH + len(leases) + len(finishing)
            print(f"\r{written:,} events", end="", flush=True)
    print()


async def measure(db: str, repeat: int) -> list[tuple[str, float, float]]:
    async with locate.open_backend(db) as backend:
        app = create_app(backend, TokenStore.parse(f"admin {TOKEN}"))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://127.0.0.1",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as http:
            listing = await http.get("/tenants/big/jobs?status=failed")
            job_path = listing.text.split('href="/tenants/big/jobs/', 1)[1].split('"', 1)[0]
            waiting = await http.get("/tenants/big/jobs?status=enqueued")
            waiting_path = waiting.text.split('href="/tenants/big/jobs/', 1)[1].split('"', 1)[0]
            first = await http.get("/tenants/big/jobs")
            cursor = first.text.split('id="next" href="?', 1)[1].split('"', 1)[0]
            cursor = cursor.replace("&amp;", "&")
            pages = {
                "overview (3 tenants)": "/",
                "job list, first page (biggest tenant)": "/tenants/big/jobs",
                "job list, next page": f"/tenants/big/jobs?{cursor}",
                "job list, dead letters": "/tenants/big/jobs?status=failed",
                "job list, type + queue filter": "/tenants/big/jobs?type=email&queue=bulk",
                "job list, key search": "/tenants/big/jobs?q=order-4242",
                "dead letters, every tenant": "/jobs?status=failed",
                "job page (dead letter)": f"/tenants/big/jobs/{job_path}",
                "job page (waiting job)": f"/tenants/big/jobs/{waiting_path}",
            }
            results = []
            for name, path in pages.items():
                times = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    answer = await http.get(path)
                    times.append((time.perf_counter() - start) * 1000)
                    assert answer.status_code == 200, (path, answer.status_code)
                times.sort()
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                results.append((name, statistics.median(times), p95))
    return results


async def has_jobs(db: str) -> bool:
    """Whether `db` exists and holds jobs already (then it is reused)."""
    if not locate.is_postgres_url(db) and not _prepared(Path(db)):
        return False
    backend: Backend = locate.open_backend(db)
    async with backend:  # creates the schema if needed
        pass
    log = locate.open_log(db)
    try:
        return await log.last_position() > 0
    finally:
        await log.close()


def _prepared(path: Path) -> bool:
    """Whether the SQLite file exists (else its folder is made for it)."""
    if path.exists():
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", help="the log to build or reuse: a SQLite path or a URL")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    db = args.db or str(Path(__file__).parent / "results" / f"web-{args.events}.db")
    if not asyncio.run(has_jobs(db)):
        asyncio.run(build(db, args.events))
    results = asyncio.run(measure(db, args.repeat))
    print(f"| page ({args.events:,}-event log) | median ms | p95 ms |")
    print("| --- | ---: | ---: |")
    for name, median, p95 in results:
        print(f"| {name} | {median:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
