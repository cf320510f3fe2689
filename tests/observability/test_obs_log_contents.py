"""What a worker run's log records hold: one line per outcome; never a payload or a
result; error text (type and first line) unless one setting keeps it out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Literal

import pytest
from msgspec.structs import replace

from dogqueue import (
    Job,
    JobError,
    JobStatus,
    QueueAdapter,
    QueueConfig,
    QueueCtx,
    SyncJob,
    Worker,
    WorkerSettings,
    current_run,
)
from dogqueue.backend.memory import MemoryBackend
from dogqueue.observability.logging import REDACT_ENV, JsonLogFormatter
from tests.runtime.helpers import event_types, until, until_status

T = QueueCtx("acme")
PAYLOAD = "payload-7f3a"
RESULT = "result-91bc"
ERROR = "error-c4d2"


class Fine(Job[None, str]):
    JOB_TYPE = "fine"
    secret: str

    async def execute(self, ctx: None) -> str:
        return f"{RESULT} {self.secret}"


class FlakyOnce(Job[None, str]):
    JOB_TYPE = "flaky_once"
    secret: str

    async def execute(self, ctx: None) -> str:
        if current_run().attempt == 1:
            raise ValueError(f"{ERROR} first line\n{ERROR} second line")
        return RESULT


class Refused(Job[None, None]):
    JOB_TYPE = "refused"
    secret: str

    async def execute(self, ctx: None) -> None:
        raise JobError(f"{ERROR} refused", retryable=False)


class SyncFails(SyncJob[None, str]):
    JOB_TYPE = "sync_fails"
    secret: str

    def execute(self, ctx: None) -> str:
        raise RuntimeError(f"{ERROR} in a thread")


class SyncFine(SyncJob[None, str]):
    JOB_TYPE = "sync_fine"
    secret: str

    def execute(self, ctx: None) -> str:
        return f"{RESULT} {self.secret}"


class Stuck(Job[None, None]):
    JOB_TYPE = "stuck"
    TIMEOUT = timedelta(milliseconds=50)
    secret: str

    async def execute(self, ctx: None) -> None:
        await asyncio.sleep(3600)


class Waits(Job[None, None]):
    JOB_TYPE = "waits"
    secret: str

    async def execute(self, ctx: None) -> None:
        await asyncio.Event().wait()


class Picky(Job[None, str]):
    """The worker's build: `kind` is one of two words."""

    JOB_TYPE = "picky"
    kind: Literal["a", "b"]

    async def execute(self, ctx: None) -> str:
        return self.kind


class PickyLoose(Job[None, str]):
    """The producer's build: any `kind`, so the worker's decoder refuses (and would quote) it."""

    JOB_TYPE = "picky"
    kind: str

    async def execute(self, ctx: None) -> str:
        return self.kind


class BrandNew(Job[None, str]):
    """Only the producer knows it."""

    JOB_TYPE = "brand_new"
    secret: str

    async def execute(self, ctx: None) -> str:
        return self.secret


WORKER_JOBS = [Fine, FlakyOnce, Refused, SyncFails, SyncFine, Stuck, Waits, Picky]


class Captured(logging.Handler):
    """Every record of the `dogqueue` loggers, at every level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def renderings(self) -> Iterator[str]:
        """Each record as the JSON and the text formats write it, and all it carries."""
        text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        json = JsonLogFormatter()
        for record in self.records:
            yield json.format(record)
            yield text.format(record)
            yield repr(vars(record))


@pytest.fixture
def captured() -> Iterator[Captured]:
    logger = logging.getLogger("dogqueue")
    handler, level = Captured(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def run_everything(log_error_text: bool) -> list[str]:
    """A worker run with every kind of outcome; the ids of its jobs."""
    async with MemoryBackend(config=QueueConfig(base_retry_backoff=timedelta(0))) as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend)
        for job_class in WORKER_JOBS:
            await adapter.register_job(job_class)
        producer: QueueAdapter[None] = QueueAdapter(backend)
        for other in (PickyLoose, BrandNew):
            await producer.register_job(other)
        settings = WorkerSettings(tenants=(T,), handle_signals=False, log_error_text=log_error_text)

        # Failing for good: no newer worker comes within a zero deploy grace.
        settled = [
            await adapter.enqueue(T, Fine(secret=PAYLOAD)),
            await adapter.enqueue(T, FlakyOnce(secret=PAYLOAD), max_retries=1),
            await adapter.enqueue(T, Refused(secret=PAYLOAD)),
            await adapter.enqueue(T, SyncFails(secret=PAYLOAD), max_retries=0),
            await adapter.enqueue(T, SyncFine(secret=PAYLOAD)),
            await adapter.enqueue(T, Stuck(secret=PAYLOAD), max_retries=0),
            await producer.enqueue(T, PickyLoose(kind=PAYLOAD)),
            await producer.enqueue(T, BrandNew(secret=PAYLOAD)),
        ]
        waits = await adapter.enqueue(T, Waits(secret=PAYLOAD))
        async with Worker(adapter, settings=replace(settings, deploy_grace=timedelta(0))):
            for job_id in settled:
                await until_status(backend, T, job_id, JobStatus.COMPLETED, JobStatus.FAILED)
            await until_status(backend, T, waits, JobStatus.LEASED)
            await adapter.cancel_job(T, waits)

        # Held and given back for a newer worker.
        held = [
            await producer.enqueue(T, PickyLoose(kind=PAYLOAD)),
            await producer.enqueue(T, BrandNew(secret=PAYLOAD)),
        ]
        async with Worker(adapter, settings=replace(settings, deploy_hold=timedelta(0))):
            for job_id in held:

                async def released(job_id: str = job_id) -> bool:
                    return "released" in await event_types(backend, T, job_id)

                await until(released)
        assert await backend.get_status(T, settled[1]) is JobStatus.COMPLETED  # after a retry
        assert await backend.get_status(T, settled[5]) is JobStatus.FAILED  # timed out
        return [*settled, waits, *held]


def outcome_lines(captured: Captured, job_id: str) -> list[logging.LogRecord]:
    return [
        r
        for r in captured.records
        if r.__dict__.get("job_id") == job_id and "outcome" in r.__dict__
    ]


async def test_no_payload_or_result_is_logged_and_errors_show_their_first_line(
    captured: Captured,
) -> None:
    ids = await run_everything(log_error_text=True)
    rendered = list(captured.renderings())
    for marker in (PAYLOAD, RESULT):
        assert not [line for line in rendered if marker in line], marker
    # Error text is logged by default: the type and first line, never the second line.
    failures = [r.getMessage() for r in captured.records if ERROR in r.getMessage()]
    assert any("ValueError: error-c4d2 first line" in line for line in failures)
    assert any("JobError: error-c4d2 refused" in line for line in failures)
    assert any("RuntimeError: error-c4d2 in a thread" in line for line in failures)
    assert not [line for line in rendered if "second line" in line]
    # One line per outcome: a job's id appears only in its start and outcome lines.
    for job_id in ids:
        mentions = [r for r in captured.records if job_id in r.getMessage()]
        assert all(
            "outcome" in r.__dict__ or r.getMessage().startswith("job started") for r in mentions
        ), [r.getMessage() for r in mentions]
    stuck, picky, new, waits = ids[5], ids[6], ids[7], ids[8]
    (timed_out,) = outcome_lines(captured, stuck)
    assert "timed out after" in timed_out.getMessage()
    assert (
        "cannot run here: its payload does not decode"
        in outcome_lines(captured, picky)[0].getMessage()
    )
    assert "job type 'brand_new' is not registered" in outcome_lines(captured, new)[0].getMessage()
    (canceled,) = outcome_lines(captured, waits)
    assert canceled.__dict__["outcome"] == "canceled"
    assert "given back for a newer worker" in outcome_lines(captured, ids[9])[0].getMessage()


@pytest.mark.parametrize("switch", ["option", "environment"])
async def test_one_setting_keeps_error_text_out_of_every_line(
    captured: Captured, monkeypatch: pytest.MonkeyPatch, switch: str
) -> None:
    if switch == "environment":
        monkeypatch.setenv(REDACT_ENV, "1")
    await run_everything(log_error_text=switch != "option")
    rendered = list(captured.renderings())
    for marker in (PAYLOAD, RESULT, ERROR):
        assert not [line for line in rendered if marker in line], marker
    types = {r.__dict__.get("error_type") for r in captured.records}
    assert {"ValueError", "JobError", "RuntimeError"} <= types
