"""examples/fastapi_sqlalchemy.py for real: a uvicorn process serving the app and a
`dogqueue worker` process on the local PostgreSQL server, driven over HTTP. An order and
its job commit together; a rolled-back order leaves no job."""

from __future__ import annotations

import signal
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from dogqueue import QueueCtx
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.testing.postgres import drop_schema
from tests.runtime.helpers import until
from tests.runtime.test_web_service import free_port, process, serving

pytestmark = pytest.mark.postgres


async def test_orders_and_their_jobs_commit_together_over_http(tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    shop, queue = f"test_shop_{suffix}", f"test_queue_{suffix}"
    env = {"DATABASE_URL": default_dsn(), "SHOP_SCHEMA": shop, "QUEUE_SCHEMA": queue}
    port = free_port()
    web = [sys.executable, "-m", "uvicorn", "fastapi_sqlalchemy:app", "--port", str(port)]
    worker = [sys.executable, "-m", "dogqueue", "worker", "fastapi_sqlalchemy:make_adapter"]
    worker += ["--db", f"{default_dsn()}?schema={queue}", "--queue", "*"]
    try:
        with process(web, env, tmp_path / "web.log", exit_codes=(0, -signal.SIGTERM)):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                await until(lambda: serving(http))
                placed = (await http.post("/acme/orders", params={"item": "cake"})).json()
                sold_out = await http.post("/acme/orders", params={"item": "cake"})
                assert sold_out.status_code == 409 and "out of stock" in sold_out.text
                unknown = await http.post("/acme/orders", params={"item": "caviar"})
                assert unknown.status_code == 404
                with process(worker, {}, tmp_path / "worker.log"):
                    result = (await http.get(f"/acme/jobs/{placed['job_id']}/result")).json()
                assert result == {"result": {"shipped": placed["order_id"], "tenant": "acme"}}
                assert (await http.get("/acme/jobs/nope/result")).status_code == 404
                # Another tenant cannot see acme's job through the URL.
                other = await http.get(f"/globex/jobs/{placed['job_id']}/result")
                assert other.status_code == 404
        conn = await asyncpg.connect(default_dsn())
        try:
            rows = await conn.fetch(f'SELECT id, job_id FROM "{shop}".orders')
        finally:
            await conn.close()
        assert [tuple(row) for row in rows] == [(placed["order_id"], placed["job_id"])]
        async with PostgresBackend(default_dsn(), schema=queue) as backend:
            assert list(await backend.projected_jobs()) == [("acme", placed["job_id"])]
            history = await backend.history(QueueCtx("acme"), placed["job_id"])
            assert [e.type for e in history] == ["enqueued", "leased", "completed"]
    finally:
        await drop_schema(default_dsn(), shop)
        await drop_schema(default_dsn(), queue)
