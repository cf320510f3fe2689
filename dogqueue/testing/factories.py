"""Backend factories for the property suite: the built-in backends, and loading a user's.

A factory is called as `factory(*, clock, config)` and returns a new, unopened backend
on storage of its own. It may also offer these optional hooks, which switch on more of
the property and conformance suites (a test needing a hook the factory lacks is skipped):

- `reopen(backend) -> Backend`: a new, unopened backend on the same storage as
  `backend`; the state machine closes `backend` first and checks that the log and every
  job survive exactly; the conformance suite also opens one beside an open `backend`,
  as a second process would.
- `async crash_mid_transaction(backend)`: start a write transaction, write to it, and lose
  it abruptly before the commit; the suites then check nothing half-written shows.
- `discard(backend)`: remove the storage a run used (temporary files, a schema).
- `hold_back_sealing(backend)`: an async context manager inside which events the
  backend commits stay in the log's unsealed tail (`LogReader.unsealed`) until it ends;
  only for a backend that numbers events after the commit (PostgreSQL). Elsewhere the
  tail is always empty, which the conformance suite checks instead.

The built-in factories offer every hook (`hold_back_sealing`: PostgreSQL's only), and
`with_options(**options)`: the same factory passing more keyword arguments (`audit_key`,
`draw`) to the backend's constructor.
"""

from __future__ import annotations

import copy
import importlib
import random
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, Self

from dogqueue.backend.base import EngineBackend
from dogqueue.backend.contract import Backend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.clock import Clock
from dogqueue.core.config import QueueConfig
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.validation import prepare_enqueue
from dogqueue.engine import Engine, Reads, Transaction, Unit


class BackendFactory(Protocol):
    """Makes a new, unopened backend on the given clock and config."""

    def __call__(self, *, clock: Clock, config: QueueConfig) -> Backend: ...


class CrashSimulated(Exception):
    """Raised inside a write transaction to lose it before its commit."""


#: Seed of the retry-jitter draws of the built-in factories: a run must replay exactly
#: for hypothesis to shrink it.
JITTER_SEED = 20300101


class BuiltinFactory:
    """What the built-in factories share: keyword options for the backend's constructor
    (a seeded jitter draw unless given another)."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def with_options(self, **options: Any) -> Self:
        """This factory, passing `options` to the backend's constructor as well."""
        made = copy.copy(self)
        made.options = {**self.options, **options}
        return made

    def _backend_options(self) -> dict[str, Any]:
        return {"draw": random.Random(JITTER_SEED).random, **self.options}


class MemoryFactory(BuiltinFactory):
    """In-memory backends; a reopened one shares the (in-process) store of the first."""

    def __call__(self, *, clock: Clock, config: QueueConfig) -> Backend:
        return MemoryBackend(clock=clock, config=config, **self._backend_options())

    def reopen(self, backend: Backend) -> Backend:
        """A new backend on the same in-memory store as `backend`."""
        assert isinstance(backend, MemoryBackend)
        again = MemoryBackend(
            clock=backend.clock,
            config=backend.config,
            **{**self._backend_options(), "audit_key": backend.audit_key},
        )
        again.share_store(backend)
        return again

    async def crash_mid_transaction(self, backend: Backend) -> None:
        """Run real units of work in one transaction, then fail before it ends."""
        assert isinstance(backend, MemoryBackend)
        await backend.open()
        await _lose_doomed_transaction(backend)

    def __repr__(self) -> str:
        return "MemoryFactory()"


#: Far enough ahead that every lease has run out by then.
_FAR = timedelta(days=3650)


def doomed_unit(engine: Engine, *, crash: bool) -> Unit[None]:
    """A unit of work that really writes: it enqueues a job for the tenant "acme" and
    cancels every leased job it can see (as if every lease had run out); then, if
    `crash`, it raises CrashSimulated before its commit, as a dropped connection would.
    Run it with the public `EngineBackend.run_unit` (or `PostgresBackend.run_unit_in`)."""
    message = JobMessage(job_type="doomed", payload_bytes=b"{}")
    enqueue = engine.enqueue_unit(prepare_enqueue(QueueCtx("acme"), (message,), engine.config))

    def run(tx: Transaction, now: datetime) -> None:
        enqueue.run(tx, now)
        for job in tx.expired_leases(None, now + _FAR):
            engine.cancel_unit(job.tenant_id, job.job_id).run(tx, now)
        if crash:
            raise CrashSimulated("connection lost before COMMIT")

    return Unit(enqueue.reads | Reads(expired=(None,)), run)


async def _lose_doomed_transaction(backend: EngineBackend) -> None:
    try:
        await backend.run_unit(doomed_unit(backend.engine, crash=True))
    except CrashSimulated:
        return
    raise AssertionError("the doomed transaction did not fail")


class SqliteFactory(BuiltinFactory):
    """SQLite backends, each on a file in its own temporary directory."""

    def __call__(self, *, clock: Clock, config: QueueConfig) -> Backend:
        directory = Path(tempfile.mkdtemp(prefix="dogqueue-props-"))
        return self._open_at(directory / "queue.db", clock, config)

    def _open_at(self, path: Path, clock: Clock, config: QueueConfig) -> SqliteBackend:
        return SqliteBackend(path, clock=clock, config=config, **self._backend_options())

    def reopen(self, backend: Backend) -> Backend:
        """A new backend on the same file as `backend`."""
        assert isinstance(backend, SqliteBackend)
        return self._open_at(Path(backend.path), backend.clock, backend.config)

    async def crash_mid_transaction(self, backend: Backend) -> None:
        """Run real units of work in one writer transaction (enqueue a job, cancel every
        leased job), then fail before the commit, as a dropped connection would."""
        assert isinstance(backend, SqliteBackend)
        await backend.open()
        await _lose_doomed_transaction(backend)

    def discard(self, backend: Backend) -> None:
        """Delete the backend's temporary directory."""
        assert isinstance(backend, SqliteBackend)
        shutil.rmtree(Path(backend.path).parent, ignore_errors=True)

    def __repr__(self) -> str:
        return "SqliteFactory()"


#: The built-in backends the suites run on without `--dogqueue-backend`, by name.
BUILTIN_NAMES = ("memory", "sqlite", "postgres", "redis")


def builtin_factory(name: str) -> BackendFactory:
    """The built-in factory called `name` (one of BUILTIN_NAMES)."""
    if name == "postgres":
        from dogqueue.testing.postgres import PostgresFactory  # needs the postgres extra

        return PostgresFactory()
    if name == "redis":
        from dogqueue.testing.redis import RedisFactory  # needs the redis extra

        return RedisFactory()
    if name == "sqlite":
        return SqliteFactory()
    if name == "memory":
        return MemoryFactory()
    raise ValueError(f"no built-in backend called {name!r}")


def default_factories() -> dict[str, BackendFactory]:
    """The built-in backends the suite runs on without `--dogqueue-backend`."""
    return {name: builtin_factory(name) for name in BUILTIN_NAMES}


def load_factory(spec: str) -> BackendFactory:
    """The factory named by `package.module:attribute`."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"backend factory {spec!r} is not of the form package.module:factory")
    factory: BackendFactory = getattr(importlib.import_module(module_name), attribute)
    if not callable(factory):
        raise TypeError(f"{spec} is not callable")
    return factory
