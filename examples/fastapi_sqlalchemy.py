"""A FastAPI shop on PostgreSQL through SQLAlchemy: placing an order writes the order,
enqueues its shipping job and takes the item from stock in one transaction, so an
order exists if and only if its job does (needs fastapi, uvicorn, sqlalchemy[asyncio]
and asyncpg).

    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres \\
        uvicorn fastapi_sqlalchemy:app --port 8000                        # the web process
    dogqueue worker fastapi_sqlalchemy:make_adapter \\
        --db 'postgresql://postgres@127.0.0.1/postgres?schema=shop_queue' --queue '*'

(both from this directory). `python examples/fastapi_sqlalchemy.py` runs the app and a
worker in one process on fresh schemas of $DATABASE_URL, makes a few requests, and drops
the schemas.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from sqlalchemy import CheckConstraint, Column, Integer, MetaData, Table, Text, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateSchema, DropSchema

from dogqueue import (
    Backend,
    Job,
    JobCanceled,
    JobFailed,
    JobNotFound,
    QueueAdapter,
    QueueCtx,
    ResultTimeout,
    Worker,
    current_run,
)
from dogqueue.backend.postgres import PostgresBackend

metadata = MetaData()  # in the schema $SHOP_SCHEMA names (shop_engine)
orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("item", Text, nullable=False),
    Column("job_id", Text),
)
stock = Table(
    "stock",
    metadata,
    Column("item", Text, primary_key=True),
    Column("count", Integer, CheckConstraint("count >= 0"), nullable=False),
)


class ShipOrder(Job[None, dict[str, Any]]):
    """Ship an order (here: say which one, for whom)."""

    JOB_TYPE = "ship-order"
    order_id: int

    async def execute(self, ctx: None) -> dict[str, Any]:
        return {"shipped": self.order_id, "tenant": current_run().tenant_id}


async def make_adapter(backend: Backend) -> QueueAdapter[None]:
    """The job types, for the web process and for `dogqueue worker`."""
    return QueueAdapter(backend, jobs=[ShipOrder])


def settings() -> tuple[str, str, str]:
    """$DATABASE_URL, and the schemas of the application's tables ($SHOP_SCHEMA) and of
    the queue ($QUEUE_SCHEMA)."""
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    return url, os.environ.get("SHOP_SCHEMA", "shop"), os.environ.get("QUEUE_SCHEMA", "shop_queue")


def shop_engine() -> AsyncEngine:
    """SQLAlchemy on the same database (asyncpg driver), the tables in $SHOP_SCHEMA."""
    url, shop_schema, _ = settings()
    return create_async_engine(
        url.replace("postgresql://", "postgresql+asyncpg://", 1),
        execution_options={"schema_translate_map": {None: shop_schema}},
    )


async def create_shop(engine: AsyncEngine) -> None:
    """The application's tables, with some stock, unless they exist (a migration tool's
    job in real life)."""
    async with engine.begin() as conn:
        await conn.execute(CreateSchema(settings()[1], if_not_exists=True))
        await conn.run_sync(metadata.create_all)
        items = [{"item": "tea", "count": 100}, {"item": "cake", "count": 1}]
        await conn.execute(pg_insert(stock).values(items).on_conflict_do_nothing())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url, _, queue_schema = settings()
    engine = shop_engine()
    try:
        async with PostgresBackend(url, schema=queue_schema) as backend:
            await create_shop(engine)
            app.state.engine = engine
            app.state.queue = await make_adapter(backend)
            yield
    finally:
        await engine.dispose()


app = FastAPI(lifespan=lifespan)


def queue() -> QueueAdapter[None]:
    adapter: QueueAdapter[None] = app.state.queue
    return adapter


@app.post("/{tenant}/orders")
async def place_order(tenant: str, item: str) -> dict[str, Any]:
    """The order, its shipping job and the stock change commit together or not at all."""
    engine: AsyncEngine = app.state.engine
    try:
        async with engine.begin() as conn:
            made = await conn.execute(
                insert(orders).values(tenant=tenant, item=item).returning(orders.c.id)
            )
            order_id = made.scalar_one()
            handle = await queue().enqueue_in_transaction(
                conn, QueueCtx(tenant), ShipOrder(order_id=order_id), idempotency_key=f"o{order_id}"
            )
            await conn.execute(update(orders).where(orders.c.id == order_id).values(job_id=handle))
            taken = await conn.execute(
                update(stock).where(stock.c.item == item).values(count=stock.c.count - 1)
            )
            if taken.rowcount != 1:
                raise HTTPException(404, f"we do not sell {item}")  # rolls the order back
    except IntegrityError:  # the stock check: the order and its job are rolled back
        raise HTTPException(409, f"{item} is out of stock") from None
    return {"order_id": order_id, "job_id": handle}


@app.get("/{tenant}/jobs/{job_id}/result")
async def job_result(tenant: str, job_id: str, wait: float = 10.0) -> dict[str, Any]:
    """Wait up to `wait` seconds for the job named in the URL."""
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


async def drop_schemas(engine: AsyncEngine, *schemas: str) -> None:
    """Remove what the demo made."""
    async with engine.begin() as conn:
        for schema in schemas:
            await conn.execute(DropSchema(schema, cascade=True, if_exists=True))


async def main() -> None:
    import httpx

    suffix = uuid.uuid4().hex[:8]
    os.environ["SHOP_SCHEMA"], os.environ["QUEUE_SCHEMA"] = f"shop_{suffix}", f"queue_{suffix}"
    engine = shop_engine()
    try:
        async with lifespan(app), Worker(queue(), handle_signals=False):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                placed = (await http.post("/acme/orders", params={"item": "cake"})).json()
                result = await http.get(f"/acme/jobs/{placed['job_id']}/result")
                print("order:", placed["order_id"], result.json())
                sold_out = await http.post("/acme/orders", params={"item": "cake"})
                print("second cake:", sold_out.status_code, sold_out.json())
    finally:
        await drop_schemas(engine, *settings()[1:])
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
