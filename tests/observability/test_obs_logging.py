"""Structured job log lines under the `dogqueue` logger, without payloads."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from dogqueue.backend.base import EngineBackend
from dogqueue.observability import observe_execution
from dogqueue.observability.logging import JsonLogFormatter
from dogqueue.observability.outcome import Outcome
from tests.observability.obs_workload import ACME, message


def job_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "dogqueue.jobs"]


async def test_start_and_finish_lines_carry_the_fields(
    backend: EngineBackend, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = await backend.enqueue(ACME, message("email"))
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None
    with caplog.at_level(logging.INFO, logger="dogqueue"):
        async with observe_execution(backend, ACME, lease):
            await backend.ack_complete(ACME, lease)
    started, finished = job_records(caplog)
    for record in (started, finished):
        assert record.__dict__["tenant_id"] == "acme"
        assert record.__dict__["job_id"] == job_id
        assert record.__dict__["job_type"] == "email"
        assert record.__dict__["attempt"] == 1
    assert started.getMessage().startswith("job started tenant_id=acme job_id=")
    assert finished.levelno == logging.INFO
    assert finished.__dict__["outcome"] == "completed"
    assert finished.__dict__["duration_seconds"] >= 0
    assert "payload-marker" not in caplog.text


@pytest.mark.parametrize("error_text", [True, False])
async def test_a_failure_is_a_warning_with_the_error_type_and_first_line(
    backend: EngineBackend, caplog: pytest.LogCaptureFixture, error_text: bool
) -> None:
    await backend.enqueue(ACME, message("email"))
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None
    with caplog.at_level(logging.INFO, logger="dogqueue"), pytest.raises(ValueError):
        async with observe_execution(backend, ACME, lease, error_text=error_text):
            raise ValueError("error-marker\nsecond-line")
    failed = job_records(caplog)[-1]
    assert failed.levelno == logging.WARNING
    assert failed.getMessage().startswith("job failed ")
    assert failed.__dict__["outcome"] == "failed"
    assert failed.__dict__["error_type"] == "ValueError"
    assert "second-line" not in caplog.text
    if error_text:
        assert failed.getMessage().endswith(" error=ValueError: error-marker")
        assert failed.__dict__["error"] == "ValueError: error-marker"
    else:
        assert "error-marker" not in caplog.text and "error" not in failed.__dict__


async def test_cancellation_is_logged_as_canceled(
    backend: EngineBackend, caplog: pytest.LogCaptureFixture
) -> None:
    await backend.enqueue(ACME, message("email"))
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None

    async def run() -> None:
        async with observe_execution(backend, ACME, lease):
            await asyncio.Event().wait()

    with caplog.at_level(logging.INFO, logger="dogqueue"):
        task = asyncio.create_task(run())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert job_records(caplog)[-1].__dict__["outcome"] == "canceled"


async def test_json_formatter_writes_one_object_per_line(
    backend: EngineBackend, caplog: pytest.LogCaptureFixture
) -> None:
    await backend.enqueue(ACME, message("email"))
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None
    with caplog.at_level(logging.INFO, logger="dogqueue"):
        async with observe_execution(backend, ACME, lease) as observation:
            observation.set_outcome(Outcome.RETRYING, RuntimeError("flaky"))
    line = JsonLogFormatter().format(job_records(caplog)[-1])
    document = json.loads(line)
    assert document["logger"] == "dogqueue.jobs"
    assert document["level"] == "WARNING"
    assert document["outcome"] == "retrying"
    assert document["error_type"] == "RuntimeError"
    assert document["job_type"] == "email"
    assert "\n" not in line
