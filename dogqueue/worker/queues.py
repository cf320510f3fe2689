"""Every queue name in use, learned by reading the log forward from where it stopped."""

from __future__ import annotations

from dogqueue.backend.contract import Backend
from dogqueue.core.events import Enqueued

#: Events read per call while catching up with the log.
PAGE = 10_000


class QueueDiscovery:
    """The queue names of every job enqueued so far. The first `refresh` reads the
    whole log once; later ones read only the events appended since."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._after_seq = 0
        self._queues: dict[str, None] = {}

    @property
    def queues(self) -> tuple[str, ...]:
        """The queue names seen, in order of first use."""
        return tuple(self._queues)

    async def refresh(self) -> tuple[str, ...]:
        """Read the events appended since the last call; return every queue name seen."""
        while True:
            events = await self._backend.read_events(after_seq=self._after_seq, limit=PAGE)
            for event in events:
                if isinstance(event, Enqueued):
                    self._queues.setdefault(event.message.queue, None)
            if events:
                self._after_seq = events[-1].seq
            if len(events) < PAGE:
                return self.queues
