"""pg_wal_by_relation.py runs a bulk lifecycle on the local PostgreSQL and attributes
its WAL to the queue's tables and indexes. No figure is asserted."""

from __future__ import annotations

import asyncio

import pytest

from bench import pg_wal_by_relation
from dogqueue.backend.postgres.backend import default_dsn


@pytest.mark.postgres
def test_the_wal_of_a_lifecycle_is_attributed_to_the_queues_relations() -> None:
    jobs, size, records = asyncio.run(pg_wal_by_relation.measure(default_dsn(), 1600))
    assert jobs == 1600
    for table in ("jobs", "events", "log"):
        assert size[table] > 0 and records[table] >= jobs, table
