"""A job failing with text that UTF-8 cannot encode (an undecodable file name in the
message) still has its failure recorded at once, with U+FFFD for what cannot be stored."""

from __future__ import annotations

from dogqueue import Job, JobError, JobStatus, QueueAdapter, QueueCtx, Worker
from dogqueue.backend.base import EngineBackend
from tests.runtime.helpers import Probe, event_types, until_status

T = QueueCtx("tenant-a")
UNDECODABLE = "cannot read /data/r\udce9sum\udce9.pdf"


class FailsForGood(Job[Probe, None]):
    """Fails, not retryably, naming a file whose name is not valid UTF-8."""

    JOB_TYPE = "fails-for-good"

    async def execute(self, ctx: Probe) -> None:
        raise JobError(UNDECODABLE, retryable=False)


class Crashes(Job[Probe, None]):
    """Raises an OSError naming that file."""

    JOB_TYPE = "crashes-on-a-file"

    async def execute(self, ctx: Probe) -> None:
        raise FileNotFoundError(2, "No such file", "/data/r\udce9sum\udce9.pdf")


async def test_a_final_failure_with_unencodable_text_is_recorded(backend: EngineBackend) -> None:
    adapter: QueueAdapter[Probe] = QueueAdapter(backend)
    await adapter.register_job(FailsForGood)
    await adapter.register_job(Crashes)
    final = await adapter.enqueue(T, FailsForGood())
    crashed = await adapter.enqueue(T, Crashes(), max_retries=0)
    async with Worker(adapter, context=Probe(), tenants=[T], handle_signals=False):
        await until_status(backend, T, final, JobStatus.FAILED)
        await until_status(backend, T, crashed, JobStatus.FAILED)
    info = await backend.get_job(T, final)
    assert info.last_error == "cannot read /data/r\ufffdsum\ufffd.pdf"
    assert await event_types(backend, T, final) == ["enqueued", "leased", "failed"]
    crash = await backend.get_job(T, crashed)
    assert crash.last_error is not None and crash.last_error.startswith("FileNotFoundError")
