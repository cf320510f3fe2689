"""Paced announcements: at most one per interval, the first at once, and one at the end
of an interval that held some back, so the last change is never left unannounced."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Pacer:
    """Decides when an announcement (a NOTIFY of new work) may go out.

    `may_send_now()` says whether the caller may send one itself right now (for instance
    inside the transaction that made the change, so that it leaves at commit); otherwise
    `send` is called once at the end of the current interval."""

    def __init__(self, interval: float, send: Callable[[], None]) -> None:
        self.interval = interval
        self._send = send
        self._last = float("-inf")
        self._due: asyncio.TimerHandle | None = None

    def may_send_now(self) -> bool:
        """True if the caller is to announce now (counted as sent); False if an
        announcement already scheduled, or scheduled by this call, covers the change."""
        if self._due is not None:
            return False
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self._last + self.interval:
            self._last = now
            return True
        self._due = loop.call_later(self._last + self.interval - now, self._fire)
        return False

    def later(self) -> None:
        """Announce at the end of the current interval (at once if it is over), unless
        an announcement is already scheduled."""
        if self._due is not None:
            return
        loop = asyncio.get_running_loop()
        wait = max(0.0, self._last + self.interval - loop.time())
        self._due = loop.call_later(wait, self._fire)

    def take_pending(self) -> bool:
        """Cancel a scheduled announcement; return whether there was one (the caller
        sends it itself, e.g. before closing)."""
        if self._due is None:
            return False
        self._due.cancel()
        self._due = None
        return True

    def _fire(self) -> None:
        self._due = None
        self._last = asyncio.get_running_loop().time()
        self._send()
