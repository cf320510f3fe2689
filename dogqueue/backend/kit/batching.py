"""Group commit: units of work from many callers wait in one pending list, run together
as one batch (one transaction), and each caller is resumed with its own result once the
batch is committed. A batch that fails is split: each unit re-runs alone, so one bad
unit fails only its own caller.

A backend passes how to run a batch (`run`: a list of units to their results, raising
if the batch as a whole failed), which failures are worth a split (`splits`), and how a
failure reaches a caller (`public`: driver errors become dogqueue errors). It may also
pass `run_alone`: a unit that is a batch by itself is offered to it first, on the event
loop and without a task, and runs the usual way only if it declines (returns None). A
unit submitted while nothing else waits to run on the loop is offered to it within the
call itself, so its caller's `await` finds the future done and never suspends.

With `overlaps`, up to `MAX_IN_FLIGHT` batches run at once (see `GroupCommit`): each
unit has a kind (or None: it runs with nothing beside it, as without `overlaps`), a
batch of them holds units of one kind, and it starts beside the batches in flight only
if `beside` allows its kind next to each of theirs. Whether that is safe is the
backend's to argue; this module keeps the order: units submitted together still run as
one batch, in order, unless they are many (a heavy window, cut into shares for the
lanes), and a unit never starts beside a batch that was taken while it waited.

A batch whose task is cancelled (the event loop shutting down) may have committed (a
thread commits on; a server may have received the commit): it is never run again, its
callers get StorageError, the cancellation ends the task, and the units still pending
wait for the next submit or for `close`.
"""

from __future__ import annotations

import asyncio
import contextvars
import operator
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, NamedTuple, TypeVar

from dogqueue.core.errors import BackendClosed, QueueError, StorageError
from dogqueue.engine import deliver, unwrap_refusal

U = TypeVar("U")
#: Most lone units run within their call before one waits for the end of the turn: a
#: caller whose awaits never suspend would otherwise keep the loop from polling I/O.
MAX_AT_ONCE = 32
#: A unit's lane: its kind and how many jobs it carries (see `overlaps`).
Lane = tuple[str, int]
#: Batches of overlapping units in flight at most (see `overlaps`).
MAX_IN_FLIGHT = 2
#: A heavy window of overlapping units is shared among the free lanes (two halves with
#: nothing in flight) when it holds at least twice this many jobs: the second half is
#: built while the first is written, and the callers of each come back (and submit
#: again) at different times, which keeps both lanes busy.
MIN_HALF = 200
#: Forks this process went through (a forked child's loops are its parent's copies).
_forks = 0


def _count_fork() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_count_fork)


class Flight(NamedTuple):
    """A batch of overlapping units in flight."""

    kind: str
    #: How many batches started before it.
    number: int
    #: Whether it is a share of a heavy window: the rest of that window may start beside it.
    cut: bool


def storage_errors_from(
    server: str, driver_errors: tuple[type[BaseException], ...]
) -> Callable[[BaseException], BaseException]:
    """A `public` for GroupCommit: dogqueue's own errors as they are, the driver's as
    StorageError naming `server`, anything else unchanged."""

    def public(error: BaseException) -> BaseException:
        error = unwrap_refusal(error)
        if isinstance(error, QueueError):
            return error
        if isinstance(error, driver_errors):
            return StorageError(f"{server}: {error}")
        return error

    return public


class GroupCommit(Generic[U]):
    """Pending units → batches of at most `max_batch` → split on failure → delivered.

    The first unit submitted while no batch runs starts one at the end of the event
    loop's current turn, so units submitted together share one batch; units submitted
    while a batch runs wait for the next one. With `run_alone`, a unit submitted while
    no other callback is ready on the loop (no other caller can join it this turn) is
    offered to `run_alone` at once; so are at most `MAX_AT_ONCE` in a row, then one
    waits for the turn's end.

    `overlaps` gives a unit's `Lane` (kind, jobs), or None for a unit that may run
    beside nothing; `beside(kind, other)` says whether a batch of `kind` may start while
    one of `other` is in flight (by default: the same kind). See `_next_batch`."""

    def __init__(
        self,
        run: Callable[[list[U]], Awaitable[list[Any]]],
        *,
        max_batch: int,
        public: Callable[[BaseException], BaseException],
        splits: Callable[[BaseException], bool] = lambda error: True,
        run_alone: Callable[[U], list[Any] | None] | None = None,
        overlaps: Callable[[U], Lane | None] | None = None,
        beside: Callable[[str, str], bool] = operator.eq,
    ) -> None:
        self._run = run
        self._run_alone = run_alone
        #: The end-of-turn start of the next batch, when `run_alone` may take it.
        self._start: asyncio.Handle | None = None
        self._max_batch = max_batch
        self._public = public
        self._splits = splits
        self._pending: list[tuple[U, asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._closing = False
        #: Lone units run within their call since one last waited for a turn's end.
        self._at_once = 0
        #: The running loop as last asked of asyncio, and `_forks` then (`_this_loop`).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_forks = 0
        self._overlaps = overlaps
        self._beside = beside
        #: With `overlaps`: the batches of overlapping units in flight, how many
        #: batches have started, when each pending unit was submitted (how many had
        #: started then), and what wakes the drainer (a unit submitted, a batch landed).
        self._in_flight: dict[asyncio.Task[None], Flight] = {}
        self._started = 0
        self._stamps: dict[asyncio.Future[Any], int] = {}
        self._wake = asyncio.Event() if overlaps is not None else None

    def submit(self, unit: U) -> asyncio.Future[Any]:
        """Queue `unit` for a batch; the future resolves with its result once committed
        (BackendClosed once `close` has begun)."""
        loop = self._this_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closing:
            future.set_exception(BackendClosed("backend is closed"))
            return future
        results = self.run_at_once(unit, loop)
        if results is not None:
            deliver([future], results)
            return future
        self._pending.append((unit, future))
        if self._overlaps is not None:
            self._stamps[future] = self._started
        if self._start is None and (self._drainer is None or self._drainer.done()):
            # A batch serves every caller in it, so it runs in a context of its own: not
            # the first caller's (its trace span, its job's run), which would otherwise
            # parent the batch's driver calls and stay alive as long as the batch.
            if self._run_alone is None:
                self._drainer = loop.create_task(self._drain(), context=contextvars.Context())
            else:
                self._start = loop.call_soon(self._start_batch, context=contextvars.Context())
        elif self._wake is not None:
            self._wake.set()
        return future

    def run_at_once(
        self, unit: U, loop: asyncio.AbstractEventLoop | None = None
    ) -> list[Any] | None:
        """What `submit` does first, for a caller that needs no future: if `unit` is
        alone for this turn and `run_alone` takes it, its results (an error among them
        is its caller's, as `submit` would deliver it); else None, and nothing ran."""
        if self._closing or not self._may_run_at_once(loop or self._this_loop()):
            return None
        results = self._offer_alone(unit)
        if results is not None:
            self._at_once += 1
        return results

    def _this_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop. Asking asyncio makes a getpid system call (once per unit
        submitted), so the loop it last named is kept while it still runs on this thread
        (asyncio's loops record the thread that runs them; one loop at a time runs per
        thread) in this process."""
        loop = self._loop
        if (
            loop is None
            or self._loop_forks != _forks
            or getattr(loop, "_thread_id", None) != threading.get_ident()
        ):
            loop = self._loop = asyncio.get_running_loop()
            self._loop_forks = _forks
        return loop

    def _may_run_at_once(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether a unit submitted now is alone for this turn: nothing pending or
        running, and no other callback ready on the loop (asyncio's own loop says so;
        on another, never)."""
        if (
            self._run_alone is None
            or self._pending
            or self._start is not None
            or (self._drainer is not None and not self._drainer.done())
            or self._at_once >= MAX_AT_ONCE
        ):
            return False
        ready = getattr(loop, "_ready", None)
        return ready is not None and not ready

    def _offer_alone(self, unit: U) -> list[Any] | None:
        assert self._run_alone is not None
        try:
            return self._run_alone(unit)
        except BaseException as error:  # it failed alone: its caller gets the error
            return [self._public(error)]

    def _start_batch(self) -> None:
        """At the end of the turn that submitted the first unit: a lone unit goes to
        `run_alone`; anything else (or a unit it declines) to a draining task."""
        self._start = None
        self._at_once = 0
        if len(self._pending) == 1 and self._run_alone is not None:
            unit, future = self._pending[0]
            results = self._offer_alone(unit)
            if results is not None:
                self._pending.clear()
                self._stamps.pop(future, None)
                deliver([future], results)
                return
        if self._pending:
            self._drainer = asyncio.get_running_loop().create_task(
                self._drain(), context=contextvars.Context()
            )

    def holding(self) -> str:
        """What it holds now (for a report on a close or a caller that does not end)."""
        drainer = self._drainer
        return (
            f"{len(self._pending)} pending, start {'due' if self._start else 'none'},"
            f" drainer {'none' if drainer is None else 'done' if drainer.done() else 'running'},"
            f" {len(self._in_flight)} in flight, closing {self._closing}"
        )

    async def close(self) -> None:
        """Refuse new units and wait until every pending one has its result."""
        self._closing = True
        if self._start is not None:  # its turn has not come: start it now
            self._start.cancel()
            self._start_batch()
        while True:
            drainer = self._drainer
            if drainer is not None and not drainer.done():
                await asyncio.wait({drainer})  # its cancellation is not close's
            elif self._pending or self._in_flight:  # left by a drainer that was cancelled
                self._drainer = asyncio.get_running_loop().create_task(
                    self._drain(), context=contextvars.Context()
                )
            else:
                return

    async def _drain(self) -> None:
        if self._overlaps is not None:
            await self._drain_overlapping()
            return
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            await self._run_and_deliver(batch)

    async def _drain_overlapping(self) -> None:
        """Start each batch as soon as it may run, until nothing is pending or in flight."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while self._pending or self._in_flight:
            batch, flight = self._next_batch()
            if batch is not None:
                self._started += 1
            if batch is not None and flight is None:  # as without `overlaps`
                await self._run_and_deliver(batch)
                continue
            if batch is not None:
                assert flight is not None
                task = loop.create_task(self._run_and_deliver(batch))
                self._in_flight[task] = flight
                task.add_done_callback(self._landed)
                continue
            self._wake.clear()
            await self._wake.wait()

    def _next_batch(self) -> tuple[list[tuple[U, asyncio.Future[Any]]] | None, Flight | None]:
        """The next batch that may start now, taken off the pending list (or None), and
        how it flies (None: with nothing beside it).

        With none in flight, a window of units of one kind starts as a batch of that
        kind, and any other window whole with nothing beside it, as without `overlaps`
        (units submitted together run in order in one batch), unless it is heavy: units
        of overlapping kinds only, carrying at least `2 * MIN_HALF` jobs. Otherwise only
        the run of units of one kind at the head may start (units never start ahead of
        those submitted before them), if its kind may run beside each batch in flight
        and its units were submitted after that batch was taken (or it is a share of a
        heavy window they were in); a heavy window's run only its share for one free
        lane (by jobs, of the whole window), so that the lanes carry halves."""
        assert self._overlaps is not None
        if not self._pending or len(self._in_flight) >= MAX_IN_FLIGHT:
            return None, None
        window = self._pending[: self._max_batch]
        lanes = [self._overlaps(unit) for unit, _ in window]
        kind = None if lanes[0] is None else lanes[0][0]
        jobs: list[int] = []
        for lane in lanes:
            if lane is None or lane[0] != kind:
                break
            jobs.append(lane[1])
        heavy = None not in lanes and sum(lane[1] for lane in lanes if lane) >= 2 * MIN_HALF
        if not self._in_flight and not heavy and len(jobs) < len(window):
            return self._take(len(window)), None
        if kind is None:
            return None, None
        for flight in self._in_flight.values():
            if not self._beside(kind, flight.kind):
                return None, None
            if not flight.cut and any(
                self._stamps[future] <= flight.number for _, future in window[: len(jobs)]
            ):
                return None, None
        take = len(jobs)
        if heavy and take > 1:  # an equal share of the window for each free lane
            share = sum(lane[1] for lane in lanes if lane) / (MAX_IN_FLIGHT - len(self._in_flight))
            so_far = 0
            for index, weight in enumerate(jobs):
                so_far += weight
                if so_far >= share:
                    take = index + 1
                    break
        return self._take(take), Flight(kind, self._started, heavy)

    def _take(self, n: int) -> list[tuple[U, asyncio.Future[Any]]]:
        batch = self._pending[:n]
        del self._pending[:n]
        for _, future in batch:
            del self._stamps[future]
        return batch

    async def _run_and_deliver(self, batch: list[tuple[U, asyncio.Future[Any]]]) -> None:
        """Run `batch` and resolve its callers' futures; if it failed, run each unit
        alone (when worth it), so that only the bad one fails."""
        futures = [future for _, future in batch]
        try:
            results = await self._run([unit for unit, _ in batch])
        except asyncio.CancelledError:
            deliver(futures, [_interrupted()] * len(batch))  # it may have committed
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return  # not this task's cancellation: the batch failed, and is not re-run
        except BaseException as error:
            if len(batch) == 1 or not self._splits(error):
                deliver(futures, [self._public(error)] * len(batch))
                return
        else:
            deliver(futures, results)
            return
        for index, one in enumerate(batch):  # one unit broke the batch: each alone
            try:
                await self._run_and_deliver([one])
            except asyncio.CancelledError:
                self._put_back(batch[index + 1 :])  # not run: they wait their turn
                raise

    def _put_back(self, batch: list[tuple[U, asyncio.Future[Any]]]) -> None:
        """Return units to the head of the pending list (as if submitted now: none
        starts beside a batch taken before)."""
        self._pending[:0] = batch
        if self._overlaps is not None:
            for _, future in batch:
                self._stamps[future] = self._started

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        assert self._wake is not None
        self._wake.set()


def _interrupted() -> StorageError:
    """What the callers of a batch whose task was cancelled get."""
    return StorageError(
        "the batch was interrupted (its task was cancelled): it may or may not have committed"
    )
