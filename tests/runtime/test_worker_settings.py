"""WorkerSettings: one frozen value that refuses each bad field by name; `Worker(...)`'s
keyword arguments build it; the adapter's config fills the lease and reaper defaults;
stop reasons map to outcomes in one place; the worker's timers follow the event loop."""

from __future__ import annotations

import ast
import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from dogqueue import InvalidInput, QueueAdapter, QueueConfig, QueueCtx, Worker
from dogqueue.backend.memory import MemoryBackend
from dogqueue.observability.outcome import Outcome
from dogqueue.worker import StopReason, WorkerSettings
from tests.runtime.helpers import Probe, within

T = QueueCtx("tenant-a")
WORKER_PACKAGE = Path(__file__).parents[2] / "dogqueue" / "worker"

#: One bad value per setting, and the field the refusal must name.
BAD: list[tuple[dict[str, Any], str]] = [
    ({"concurrency": 0}, "concurrency"),
    ({"concurrency": True}, "concurrency"),
    ({"tenant_concurrency": -1}, "tenant_concurrency"),
    ({"sync_threads": 0}, "sync_threads"),
    ({"tenants": "tenant-a"}, "tenants"),
    ({"tenants": []}, "tenants"),
    ({"queues": []}, "queues"),
    ({"queues": "emails"}, "queues"),
    ({"lease_duration": timedelta(0)}, "lease_duration"),
    ({"heartbeat_interval": timedelta(seconds=-1)}, "heartbeat_interval"),
    ({"timeout": timedelta(seconds=-1)}, "timeout"),
    ({"reaper_interval": timedelta(0)}, "reaper_interval"),
    ({"shutdown_grace": timedelta(seconds=-1)}, "shutdown_grace"),
    ({"max_idle": timedelta(0)}, "max_idle"),
    ({"cancel_check_interval": timedelta(0)}, "cancel_check_interval"),
    ({"blocked_loop_warning": timedelta(0)}, "blocked_loop_warning"),
    ({"deploy_grace": timedelta(seconds=-1)}, "deploy_grace"),
    ({"deploy_hold": 5}, "deploy_hold"),
    ({"context": object(), "context_factory": lambda ctx: None}, "context_factory"),
    ({"context_factory": 5}, "context_factory"),
    ({"schedules": "tick"}, "schedules"),
]


@pytest.mark.parametrize(("options", "field"), BAD, ids=[field for _, field in BAD])
def test_each_bad_setting_is_refused_by_name(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as made:
        WorkerSettings.of(**options)
    assert made.value.field == field
    with pytest.raises(InvalidInput) as through_worker:
        Worker(QueueAdapter(MemoryBackend()), **options)
    assert through_worker.value.field == field
    assert str(through_worker.value) == str(made.value)


def test_the_keyword_arguments_build_the_settings() -> None:
    adapter: QueueAdapter[None] = QueueAdapter(MemoryBackend())
    worker = Worker(adapter, tenants=[T], queues=["a", "b", "a"], concurrency=3)
    assert worker.settings.tenants == (T,) and worker.tenants == [T]
    assert worker.settings.queues == ("a", "b") and worker.queues == ("a", "b")
    assert worker.concurrency == worker.settings.concurrency == 3
    assert Worker(adapter, queues="*").all_queues
    given = WorkerSettings(tenants=(T,), queues=("a", "b"), concurrency=3)
    assert Worker(adapter, settings=given).settings == worker.settings
    for wrong in (
        {"settings": {"concurrency": 3}},
        {"settings": given, "concurrency": 4},
        {"settings": given, "tenants": [T]},
    ):
        with pytest.raises(InvalidInput) as refused:
            Worker(adapter, **wrong)
        assert refused.value.field == "settings"


def test_settings_are_frozen_and_the_adapter_fills_their_defaults() -> None:
    config = QueueConfig(
        default_lease_duration=timedelta(seconds=12), reaper_interval=timedelta(seconds=3)
    )
    settings = WorkerSettings()
    with pytest.raises(AttributeError):
        settings.concurrency = 5  # type: ignore[misc]
    resolved = settings.resolved(config)
    assert resolved.lease_duration == timedelta(seconds=12)
    assert resolved.reaper_interval == timedelta(seconds=3)
    assert settings.lease_duration is None  # the original is unchanged
    mine = msgspec.structs.replace(settings, lease_duration=timedelta(seconds=40))
    assert mine.resolved(config).lease_duration == timedelta(seconds=40)
    worker: Worker[None] = Worker(QueueAdapter(MemoryBackend(config=config)), settings=mine)
    assert worker.settings.lease_duration == timedelta(seconds=40)
    assert worker.settings.reaper_interval == timedelta(seconds=3)


def test_each_stop_reason_has_one_outcome() -> None:
    assert {reason: reason.outcome for reason in StopReason} == {
        StopReason.CANCELED: Outcome.CANCELED,
        StopReason.LEASE_LOST: Outcome.LEASE_LOST,
        StopReason.SHUTDOWN: Outcome.RELEASED,
        StopReason.TIMED_OUT: None,  # a failed attempt: retrying or failed
    }
    assert {reason for reason in StopReason if reason.discards} == {
        StopReason.CANCELED,
        StopReason.LEASE_LOST,
    }


def _clock_reads(path: Path) -> set[str]:
    """The wall-clock functions of `time` a module calls."""
    calls = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "time"
            and node.attr in {"monotonic", "time", "perf_counter", "monotonic_ns", "time_ns"}
        ):
            calls.add(node.attr)
    return calls


def test_only_the_watchdog_and_the_supervisor_read_the_wall_clock() -> None:
    """Every other timer of the worker follows its event loop's clock, so a loop with
    virtual time controls them all."""
    reading = {path.name for path in WORKER_PACKAGE.glob("*.py") if _clock_reads(path)}
    assert reading == {"watchdog.py", "supervisor.py"}
    assert _clock_reads(WORKER_PACKAGE / "watchdog.py") == {"monotonic"}


async def test_no_watchdog_thread_without_a_blocked_loop_warning() -> None:
    def watchdogs() -> int:
        return sum(t.name == "dogqueue-loop-watchdog" for t in threading.enumerate())

    before = watchdogs()
    adapter: QueueAdapter[Probe] = QueueAdapter(MemoryBackend())
    async with Worker(adapter, handle_signals=False, blocked_loop_warning=None) as worker:
        assert watchdogs() == before
    async with Worker(adapter, handle_signals=False) as worker:
        await within(_until(lambda: watchdogs() == before + 1))
    await within(worker.stop())


async def _until(condition: Any) -> None:
    while not condition():  # noqa: ASYNC110 (a thread's start)
        await asyncio.sleep(0.001)
