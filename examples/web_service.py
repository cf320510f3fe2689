"""A web service that enqueues typed jobs per request, with `dogqueue worker` processes
running them (needs the `web` extra: fastapi, uvicorn).

    DOGQUEUE_DB=queue.db uvicorn web_service:app --port 8000          # the web process
    DOGQUEUE_DB=queue.db dogqueue worker web_service:make_adapter --db queue.db

(both from this directory). `python examples/web_service.py` runs the app and a worker
in one process on a temporary database and makes a few requests.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException

from dogqueue import (
    Backend,
    Job,
    JobCanceled,
    JobFailed,
    JobNotFound,
    JobRegistry,
    QueueAdapter,
    QueueCtx,
    ResultTimeout,
    Worker,
    current_run,
    job,
)
from dogqueue.backend.sqlite import SqliteBackend

#: Every job type of the service, registered where each is defined.
jobs: JobRegistry[None] = JobRegistry()


@jobs.register
class Export(Job[None, dict[str, Any]]):
    """Export `rows` rows of the tenant's data (slowly, to show progress and cancel)."""

    JOB_TYPE = "export"
    rows: int
    seconds_per_row: float = 0.0

    async def execute(self) -> dict[str, Any]:
        run = current_run()  # the tenant comes with the run, not in the payload
        for row in range(self.rows):
            await asyncio.sleep(self.seconds_per_row)
            if row % 100 == 0:
                await run.report_progress(row / self.rows, f"{row} rows")
        return {"tenant": run.tenant_id, "rows": self.rows, "attempt": run.attempt}


@job(job_type="welcome-mail", registry=jobs, takes_context=False)
async def welcome_mail(email: str) -> str:
    """Send a welcome mail."""
    return f"sent to {email}"


def make_adapter(backend: Backend) -> QueueAdapter[None]:
    """The adapter with every job type, for the web process and for `dogqueue worker`."""
    return QueueAdapter(backend, jobs=jobs)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with SqliteBackend(os.environ.get("DOGQUEUE_DB", "queue.db")) as backend:
        app.state.queue = make_adapter(backend)
        yield


app = FastAPI(lifespan=lifespan)


def queue() -> QueueAdapter[None]:
    adapter: QueueAdapter[None] = app.state.queue
    return adapter


@app.post("/{tenant}/exports")
async def start_export(tenant: str, rows: int, seconds_per_row: float = 0.0) -> dict[str, str]:
    handle = await queue().enqueue(
        QueueCtx(tenant), Export(rows=rows, seconds_per_row=seconds_per_row)
    )
    return {"job_id": handle}


@app.post("/{tenant}/welcome")
async def send_welcome(tenant: str, email: str) -> dict[str, str]:
    handle = await queue().enqueue(QueueCtx(tenant), welcome_mail(email))
    return {"job_id": handle}


@app.get("/{tenant}/jobs/{job_id}")
async def job_status(tenant: str, job_id: str) -> dict[str, Any]:
    try:
        info = await queue().get_job(QueueCtx(tenant), job_id)
    except JobNotFound:
        raise HTTPException(404, "no such job") from None
    return {"status": str(info.status), "attempts": info.attempts, "error": info.last_error}


@app.get("/{tenant}/jobs/{job_id}/result")
async def job_result(tenant: str, job_id: str, wait: float = 10.0) -> dict[str, Any]:
    ctx = QueueCtx(tenant)
    try:
        handle = await queue().handle(ctx, job_id)
        return {"result": await queue().wait_result(ctx, handle, timeout=wait)}
    except JobNotFound:
        raise HTTPException(404, "no such job") from None
    except ResultTimeout as pending:
        return {"pending": pending.status}
    except (JobFailed, JobCanceled) as error:
        raise HTTPException(409, str(error)) from None


@app.delete("/{tenant}/jobs/{job_id}")
async def cancel(tenant: str, job_id: str) -> dict[str, str]:
    return {"status": str(await queue().cancel_job(QueueCtx(tenant), job_id))}


async def main() -> None:
    import httpx

    with tempfile.TemporaryDirectory() as directory:
        os.environ["DOGQUEUE_DB"] = str(Path(directory) / "queue.db")
        async with lifespan(app), Worker(queue()):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                made = (await http.post("/acme/exports", params={"rows": 250})).json()
                result = await http.get(f"/acme/jobs/{made['job_id']}/result")
                print("export:", result.json())
                mail = (await http.post("/acme/welcome", params={"email": "a@b.c"})).json()
                print("mail:", (await http.get(f"/acme/jobs/{mail['job_id']}/result")).json())


if __name__ == "__main__":
    asyncio.run(main())
