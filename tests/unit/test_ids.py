"""Job ids are canonical UUIDv7 strings, each greater than the one made before."""

from __future__ import annotations

import uuid

from dogqueue.ids import new_job_id


def test_ids_are_canonical_uuid7_strings_in_increasing_order() -> None:
    ids = [new_job_id() for _ in range(5_000)]
    for job_id in ids:
        parsed = uuid.UUID(job_id)
        assert str(parsed) == job_id
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
