"""Fair selection of the next tenant to lease for: round-robin with per-tenant limits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

#: The room of a tenant without a concurrency limit.
UNLIMITED = 2**31


class TenantRotation:
    """Hands out tenants in turn so that no tenant's backlog delays another's jobs by
    more than one turn per other tenant. A tenant at its concurrency limit is skipped."""

    def __init__(self, limit_per_tenant: int | None = None) -> None:
        self._tenants: list[str] = []
        self._next = 0
        self._limit = limit_per_tenant
        self._running: dict[str, int] = {}

    @property
    def tenants(self) -> list[str]:
        """The tenants in rotation order."""
        return list(self._tenants)

    def replace(self, tenants: Iterable[str]) -> None:
        """Serve exactly `tenants`, keeping the turn of the tenant due next."""
        due = self._tenants[self._next] if self._next < len(self._tenants) else None
        self._tenants = list(dict.fromkeys(tenants))
        self._next = self._tenants.index(due) if due in self._tenants else 0

    def remove(self, tenant: str) -> None:
        """Stop serving `tenant` (it has no ready work), keeping the rotation's order."""
        if tenant not in self._tenants:
            return
        index = self._tenants.index(tenant)
        del self._tenants[index]
        if index < self._next:
            self._next -= 1
        if self._next >= len(self._tenants):
            self._next = 0

    def room(self, tenant: str) -> int:
        """How many more jobs of `tenant` may start (a large number when unlimited)."""
        if self._limit is None:
            return UNLIMITED
        return max(0, self._limit - self._running.get(tenant, 0))

    def has_room(self, tenant: str) -> bool:
        """Whether `tenant` is below its concurrency limit."""
        return self.room(tenant) > 0

    def turns(self) -> Iterator[str]:
        """One round from the tenant due next; each tenant yielded moves the turn past
        it, so the next round starts with the one after."""
        order = self._tenants[self._next :] + self._tenants[: self._next]
        for tenant in order:
            if tenant not in self._tenants:
                continue  # removed during this round
            if self.has_room(tenant):  # a tenant at its limit keeps its turn
                self._next = (self._tenants.index(tenant) + 1) % len(self._tenants)
                yield tenant

    def started(self, tenant: str) -> None:
        """Count a job of `tenant` as running."""
        self._running[tenant] = self._running.get(tenant, 0) + 1

    def finished(self, tenant: str) -> None:
        """Count a job of `tenant` as no longer running."""
        left = self._running.get(tenant, 0) - 1
        if left > 0:
            self._running[tenant] = left
        else:
            self._running.pop(tenant, None)
