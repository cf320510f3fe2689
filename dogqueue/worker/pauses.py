"""Which queues a worker may lease from: the served queues less those each tenant (or
the administrator, for every tenant) has paused, as its control stream says, re-read
at most once per `PAUSE_REFRESH_SECONDS`. Times are the event loop's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from dogqueue.backend.contract import Backend
from dogqueue.controls import read_many_controls

#: How often the paused sets are re-read: a pause or resume takes effect within twice
#: this (one period to be read, one idle wait at most).
PAUSE_REFRESH_SECONDS = 1.0


class PausedQueues:
    """Each served tenant's paused queues, and those paused for every tenant."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._read_at = -1.0
        self._everywhere: frozenset[str] = frozenset()
        self._by_tenant: dict[str, frozenset[str]] = {}

    @property
    def any(self) -> bool:
        """Whether some queue is paused (for a served tenant or for all)."""
        return bool(self._everywhere) or any(self._by_tenant.values())

    async def refresh(self, tenants: Iterable[str], *, force: bool = False) -> None:
        """Re-read the control streams of `tenants` and of all tenants, unless they were
        read less than `PAUSE_REFRESH_SECONDS` ago (and `force` is not set)."""
        now = asyncio.get_running_loop().time()
        if not force and self._read_at >= 0 and now - self._read_at < PAUSE_REFRESH_SECONDS:
            return
        everywhere, by_tenant = await read_many_controls(self._backend, tenants)
        self._everywhere = everywhere.paused_queues
        self._by_tenant = {tenant: state.paused_queues for tenant, state in by_tenant.items()}
        self._read_at = now

    def open_queues(self, tenant: str, queues: tuple[str, ...]) -> tuple[str, ...]:
        """The queues of `queues` the tenant may lease from now."""
        closed = self._everywhere | self._by_tenant.get(tenant, frozenset())
        return queues if not closed else tuple(q for q in queues if q not in closed)

    def open_everywhere(self, queues: tuple[str, ...]) -> tuple[str, ...]:
        """The queues of `queues` no served tenant has paused."""
        closed = self._everywhere.union(*self._by_tenant.values())
        return tuple(q for q in queues if q not in closed)
