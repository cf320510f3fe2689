"""Backend factories for the property suite: the built-in backends, and loading a user's.

A factory is called as `factory(*, clock, config)` and returns a new, unopened backend.
It may also offer these optional hooks, which switch on more of the suite:

- `reopen(backend) -> Backend`: a new, unopened backend on the same storage as the
  (closed) `backend`; the state machine then closes and reopens storage, and checks that
  the log and every job survive exactly.
- `async crash_mid_transaction(backend)`: start a write transaction, write to it, and lose
  it abruptly before the commit; the state machine then checks nothing half-written shows.
- `discard(backend)`: remove the storage a run used (temporary files).
"""

from __future__ import annotations

import importlib
import random
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from dogqueue.backend.contract import Backend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.clock import Clock
from dogqueue.core.config import QueueConfig
from dogqueue.core.message import JobMessage
from dogqueue.engine import Reads, Transaction


class BackendFactory(Protocol):
    """Makes a new, unopened backend on the given clock and config."""

    def __call__(self, *, clock: Clock, config: QueueConfig) -> Backend: ...


class CrashSimulated(Exception):
    """Raised inside a write transaction to lose it before its commit."""


#: Seed of the retry-jitter draws of the built-in factories: a run must replay exactly
#: for hypothesis to shrink it.
JITTER_SEED = 20300101


class MemoryFactory:
    """In-memory backends (nothing persists, so no reopen)."""

    def __call__(self, *, clock: Clock, config: QueueConfig) -> Backend:
        return MemoryBackend(clock=clock, config=config, draw=random.Random(JITTER_SEED).random)

    def __repr__(self) -> str:
        return "MemoryFactory()"


class SqliteFactory:
    """SQLite backends, each on a file in its own temporary directory."""

    def __call__(self, *, clock: Clock, config: QueueConfig) -> Backend:
        directory = Path(tempfile.mkdtemp(prefix="dogqueue-props-"))
        return self._open_at(directory / "queue.db", clock, config)

    def _open_at(self, path: Path, clock: Clock, config: QueueConfig) -> SqliteBackend:
        return SqliteBackend(
            path, clock=clock, config=config, draw=random.Random(JITTER_SEED).random
        )

    def reopen(self, backend: Backend) -> Backend:
        """A new backend on the same file as `backend`."""
        assert isinstance(backend, SqliteBackend)
        return self._open_at(Path(backend.path), backend.clock, backend.config)

    async def crash_mid_transaction(self, backend: Backend) -> None:
        """Run real units of work in one writer transaction (enqueue a job, cancel every
        leased job), then fail before the commit, as a dropped connection would."""
        assert isinstance(backend, SqliteBackend)
        engine = backend._engine

        def doomed(tx: Transaction, now: datetime) -> None:
            message = JobMessage(job_type="doomed", payload_bytes=b"{}")
            engine.enqueue(tx, "acme", (message,), now)
            for job in tx.expired_leases(None, now + timedelta(days=3650)):
                engine.cancel(tx, job.tenant_id, job.job_id, now)
            raise CrashSimulated("connection lost before COMMIT")

        await backend.open()
        try:
            await backend._transact(doomed, Reads(new_jobs=1, expired=(None,)))
        except CrashSimulated:
            return
        raise AssertionError("the doomed transaction did not fail")

    def discard(self, backend: Backend) -> None:
        """Delete the backend's temporary directory."""
        assert isinstance(backend, SqliteBackend)
        shutil.rmtree(Path(backend.path).parent, ignore_errors=True)

    def __repr__(self) -> str:
        return "SqliteFactory()"


def default_factories() -> dict[str, BackendFactory]:
    """The built-in backends the suite runs on without `--dogqueue-backend`."""
    from dogqueue.testing.postgres import PostgresFactory  # needs the postgres extra

    return {"memory": MemoryFactory(), "sqlite": SqliteFactory(), "postgres": PostgresFactory()}


def load_factory(spec: str) -> BackendFactory:
    """The factory named by `package.module:attribute`."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"backend factory {spec!r} is not of the form package.module:factory")
    factory: BackendFactory = getattr(importlib.import_module(module_name), attribute)
    if not callable(factory):
        raise TypeError(f"{spec} is not callable")
    return factory
