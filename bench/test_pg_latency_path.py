"""pg_latency_path.py stamps every hop of every job's path on the local PostgreSQL. No
figure is asserted."""

from __future__ import annotations

import pytest

from bench import pg_latency_path
from dogqueue.backend.postgres.backend import default_dsn


@pytest.mark.postgres
def test_every_job_has_every_hop_of_its_path() -> None:
    found = pg_latency_path.run(default_dsn(), 5, 50.0)
    assert len(found) == 2 + len(pg_latency_path.CONSUMER_PATH) + 2  # hops, and the total
    assert all(len(values) == 5 for values in found.values())
    assert all(value >= 0 for value in found["total"])
