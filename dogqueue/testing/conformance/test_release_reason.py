"""A give-back records why and until when (a deploy hold) on every backend; a bad
reason or time is refused by name and appends nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from dogqueue import FakeClock, InvalidInput, QueueCtx, Released
from dogqueue.backend.contract import Backend

from .helpers import log_size, message

CTX = QueueCtx("tenant-a")


async def test_release_records_its_reason_and_until(backend: Backend, clock: FakeClock) -> None:
    job_id = await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    until = clock() + timedelta(minutes=10)
    size = await log_size(backend)
    with pytest.raises(InvalidInput, match="reason"):
        await backend.release(CTX, lease, reason=b"x")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="until"):
        await backend.release(CTX, lease, until=datetime(2030, 1, 1))
    assert await log_size(backend) == size
    await backend.release(CTX, lease, reason="no worker can run this type here", until=until)
    released = (await backend.history(CTX, job_id))[-1]
    assert isinstance(released, Released)
    assert (released.reason, released.until) == ("no worker can run this type here", until)
    again = await backend.dequeue(CTX, ["default"])
    assert again is not None
    await backend.release(CTX, again)  # a plain give-back says nothing
    plain = (await backend.history(CTX, job_id))[-1]
    assert isinstance(plain, Released) and plain.reason is None and plain.until is None
