"""The overview's rates, folded from the log: per tenant and minute, the jobs that
completed and those that failed for good, over the last hour. The dashboard folds only
the events appended since its previous look; when it starts it finds the hour's first
event by bisecting the log (positions follow time closely, and a skewed clock only moves
an event into a neighbouring minute)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dogqueue.backend.contract import Backend
from dogqueue.core.events import AnyEvent, Completed, Expired, Failed
from dogqueue.core.evolve import failure_is_final
from dogqueue.log.reader import LogReader

#: How far back the rates and charts reach.
WINDOW = timedelta(hours=1)
#: Events read per query.
PAGE = 5_000
#: Events folded per look at most: a queue busier than this per refresh shows the
#: newest part of its hour (the page says so).
MOST_PER_LOOK = 200_000


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


@dataclass
class TenantActivity:
    """Completions and dead letters of one tenant, per minute."""

    completed: Counter[datetime] = field(default_factory=Counter)
    dead: Counter[datetime] = field(default_factory=Counter)


@dataclass
class RecentActivity:
    """What the log says happened in the last WINDOW, kept up to date incrementally."""

    tenants: dict[str, TenantActivity] = field(default_factory=dict)
    #: The last log position folded (None: not started).
    position: int | None = None
    #: True when a look stopped at MOST_PER_LOOK events (the figures are partial).
    partial: bool = False

    async def refresh(self, backend: Backend, now: datetime) -> None:
        """Fold the events appended since the last look, and forget minutes older than
        the window. Events not yet given a position (PostgreSQL) wait for the next look:
        a look never waits for them."""
        log = backend.log_reader(wait_for_own_writes=False)
        try:
            await self._fold_new(log, now)
        finally:
            await log.close()
        horizon = _minute(now - WINDOW)
        for activity in self.tenants.values():
            for series in (activity.completed, activity.dead):
                for minute in [m for m in series if m < horizon]:
                    del series[minute]

    async def _fold_new(self, log: LogReader, now: datetime) -> None:
        if self.position is None:
            self.position = await _first_position_since(log, now - WINDOW)
        folded = 0
        self.partial = False
        while True:
            page = await log.events(after=self.position, limit=PAGE)
            for event in page:
                self._fold(event)
                self.position = event.seq
            folded += len(page)
            if len(page) < PAGE:
                break
            if folded >= MOST_PER_LOOK:
                self.partial = True
                break

    def _fold(self, event: AnyEvent) -> None:
        if isinstance(event, Completed):
            self._tenant(event.tenant_id).completed[_minute(event.at)] += 1
        elif isinstance(event, Failed | Expired) and failure_is_final(event):
            self._tenant(event.tenant_id).dead[_minute(event.at)] += 1

    def _tenant(self, tenant_id: str) -> TenantActivity:
        return self.tenants.setdefault(tenant_id, TenantActivity())

    def completed_per_minute(self, tenant_id: str, now: datetime, minutes: int = 10) -> float:
        """Completions per minute over the last `minutes` minutes (this one included)."""
        activity = self.tenants.get(tenant_id)
        if activity is None:
            return 0.0
        end = _minute(now)
        start = end - timedelta(minutes=minutes - 1)
        return sum(n for m, n in activity.completed.items() if start <= m <= end) / minutes

    def dead_in_window(self, tenant_id: str, now: datetime) -> int:
        """Jobs that failed for good within the window."""
        activity = self.tenants.get(tenant_id)
        if activity is None:
            return 0
        horizon = now - WINDOW
        return sum(n for m, n in activity.dead.items() if m >= _minute(horizon))

    def per_minute(self, tenant_id: str, now: datetime, which: str) -> list[int]:
        """`completed` or `dead` per minute over the window, oldest first."""
        activity = self.tenants.get(tenant_id, TenantActivity())
        series: Counter[datetime] = getattr(activity, which)
        end = _minute(now)
        count = int(WINDOW.total_seconds() // 60)
        return [series.get(end - timedelta(minutes=count - 1 - i), 0) for i in range(count)]


async def _first_position_since(log: LogReader, since: datetime) -> int:
    """The position just before the first event at or after `since` (by bisection over
    log positions; the events' times rise with their positions)."""
    last = await log.last_position()
    low, high = 0, last  # the answer lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        page = await log.events(after=middle, limit=1)
        if not page or page[0].at >= since:
            high = middle
        else:
            low = page[0].seq
    return low
