"""The memory backend runs every unit of work through the kit's strict view (SQLite too,
under the tests): a unit whose declaration omits a read fails with UndeclaredRead, and
keeps nothing it wrote."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dogqueue import FakeClock, JobMessage, QueueCtx
from dogqueue.backend.kit.strictview import CHECK_READS_ENV, UndeclaredRead
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.core.cron import key_prefix
from dogqueue.core.validation import prepare_enqueue
from dogqueue.engine import Reads, Transaction, Unit

ACME = QueueCtx("acme")


def _message(**options: object) -> JobMessage:
    return JobMessage(job_type="t", payload_bytes=b"{}", **options)  # type: ignore[arg-type]


Read = Callable[[Transaction, datetime], object]
#: (what it reads, the read, a declaration that covers it).
READS: list[tuple[str, Read, Reads]] = [
    ("a job", lambda tx, now: tx.load("acme", "p"), Reads(jobs=(("acme", "p"),))),
    ("a key", lambda tx, now: tx.job_for_key("acme", "k"), Reads(keys=(("acme", "k"),))),
    (
        "a schedule's latest key",
        lambda tx, now: tx.latest_key("acme", key_prefix("s")),
        Reads(key_prefixes=(("acme", key_prefix("s")),)),
    ),
    (
        "the next ready job",
        lambda tx, now: tx.next_ready("acme", ("default",), now),
        Reads(ready=(("acme", ("default",), 1),)),
    ),
    ("expired leases", lambda tx, now: tx.expired_leases("acme", now), Reads(expired=("acme",))),
    (
        "a job's dependents",
        lambda tx, now: tx.dependents("acme", "p"),
        Reads(dependents=(("acme", "p"),)),
    ),
]


@pytest.fixture
async def backend() -> MemoryBackend:
    backend = MemoryBackend(clock=FakeClock())
    await backend.enqueue(ACME, _message(idempotency_key="p"))
    return backend


@pytest.mark.parametrize(("what", "read", "declared"), READS, ids=[r[0] for r in READS])
async def test_an_undeclared_read_fails_and_keeps_nothing(
    backend: MemoryBackend, what: str, read: Read, declared: Reads
) -> None:
    before = await backend.read_events()
    enqueue = backend.engine.enqueue_unit(prepare_enqueue(ACME, (_message(),), backend.config))

    def writes_then_reads(tx: Transaction, now: datetime) -> object:
        enqueue.run(tx, now)
        return read(tx, now)

    with pytest.raises(UndeclaredRead):
        await backend.run_unit(Unit(enqueue.reads, writes_then_reads))
    assert await backend.read_events() == before
    await backend.run_unit(Unit(enqueue.reads | declared, writes_then_reads))  # declared: fine
    assert len(await backend.read_events()) == len(before) + 1


async def test_an_ending_unit_that_omits_the_dependents_fails(backend: MemoryBackend) -> None:
    """Completing a job settles its dependents: a declaration of the job alone falls short."""
    lease = await backend.dequeue(ACME, ["default"], lease_duration=timedelta(minutes=1))
    assert lease is not None
    complete = backend.engine.complete_unit("acme", lease, None)
    short = Unit(Reads(jobs=complete.reads.jobs), complete.run)
    with pytest.raises(UndeclaredRead, match="dependents"):
        await backend.run_unit(short)
    await backend.run_unit(complete)


async def test_a_unit_may_create_no_more_jobs_than_it_declared(backend: MemoryBackend) -> None:
    two = backend.engine.enqueue_unit(
        prepare_enqueue(ACME, [_message(), _message()], backend.config)
    )
    with pytest.raises(UndeclaredRead, match="more jobs"):
        await backend.run_unit(Unit(Reads(new_jobs=1), two.run))
    assert len(await backend.projected_jobs()) == 1


async def test_a_dequeue_may_lease_no_more_than_it_declared(backend: MemoryBackend) -> None:
    await backend.enqueue(ACME, _message())
    dequeue = backend.engine.dequeue_unit("acme", ("default",), timedelta(minutes=1), 2)
    one = Reads(ready=(("acme", ("default",), 1),), expired=("acme",))
    with pytest.raises(UndeclaredRead, match="dequeue"):
        await backend.run_unit(Unit(one, dequeue.run))
    leases = await backend.run_unit(dequeue)
    assert len(leases) == 2


async def test_sqlite_checks_reads_under_the_tests_and_skips_the_check_when_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite holds every live job in memory, so it may skip the check in production; the
    pytest plugin turns it on, so every test run still checks SQLite's declarations."""
    undeclared_load = Unit(Reads(), lambda tx, now: tx.load("acme", "p"))
    async with SqliteBackend(tmp_path / "q.db") as checked:
        with pytest.raises(UndeclaredRead):
            await checked.run_unit(undeclared_load)
    monkeypatch.setenv(CHECK_READS_ENV, "0")
    async with SqliteBackend(tmp_path / "q.db") as unchecked:
        assert await unchecked.run_unit(undeclared_load) is None
