"""Two SQLite backend objects on one file, every call going to the next of them in
turn, against the reference model: each object decides from what it knows of the end
of the log (its memo of positions and chain heads, its lone-unit path on the event
loop), and must notice every commit the other made. The model must not notice two."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from hypothesis.stateful import run_state_machine_as_test

from dogqueue import Backend, QueueConfig
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.clock import Clock
from dogqueue.testing import SqliteFactory, backend_state_machine

from .test_backend_state_machine import budget


class Interleaved:
    """Two backends on one file; each contract call goes to the next one in turn."""

    def __init__(self, first: SqliteBackend, second: SqliteBackend) -> None:
        self.handles = (first, second)
        self.config = first.config
        self.clock = first.clock
        self.path = first.path
        self._turn = 0

    def __getattr__(self, name: str) -> Any:
        handle = self.handles[self._turn]
        self._turn ^= 1
        return getattr(handle, name)

    async def open(self) -> None:
        for handle in self.handles:
            await handle.open()

    async def close(self) -> None:
        for handle in self.handles:
            await handle.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class InterleavedFactory:
    """Pairs of SQLite backends, each pair on a file in its own temporary directory."""

    def __init__(self) -> None:
        self._sqlite = SqliteFactory()

    def __call__(self, *, clock: Clock, config: QueueConfig) -> Backend:
        path = Path(tempfile.mkdtemp(prefix="dogqueue-shared-")) / "queue.db"
        return self._pair(path, clock, config)

    def _pair(self, path: Path, clock: Clock, config: QueueConfig) -> Backend:
        first, second = (
            SqliteBackend(path, clock=clock, config=config, **self._sqlite._backend_options())
            for _ in range(2)
        )
        pair: Backend = Interleaved(first, second)
        return pair

    def reopen(self, backend: Backend) -> Backend:
        """A new pair on the same file."""
        assert isinstance(backend, Interleaved)
        return self._pair(Path(backend.path), backend.clock, backend.config)

    def discard(self, backend: Backend) -> None:
        """Delete the pair's temporary directory."""
        assert isinstance(backend, Interleaved)
        shutil.rmtree(Path(backend.path).parent, ignore_errors=True)

    def __repr__(self) -> str:
        return "InterleavedFactory()"


def test_two_backends_on_one_file_match_the_model() -> None:
    factory = InterleavedFactory()
    run_state_machine_as_test(
        backend_state_machine(factory),
        settings=budget(factory),
    )
