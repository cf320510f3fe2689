"""Run N worker processes under one supervisor: a child that dies is started again,
SIGTERM and SIGINT are passed on to every child, and the supervisor exits when all
children have exited after a stop."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("dogqueue.supervisor")

#: A child that dies sooner than this after its start is restarted only after a pause,
#: so a worker that cannot start does not spin.
QUICK_DEATH_SECONDS = 2.0
#: The longest pause before restarting a child that keeps dying at once.
MAX_RESTART_PAUSE = 30.0


class Supervisor:
    """Keeps `count` children of `command(index)` running until stopped."""

    def __init__(self, command: Callable[[int], list[str]], count: int) -> None:
        if count < 1:
            raise ValueError("the supervisor needs at least one worker")
        self._command = command
        self._count = count
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._started: dict[int, float] = {}
        self._pause: dict[int, float] = {}
        self._stopping = threading.Event()
        self._signals: list[int] = []
        #: How many times a dead child was started again.
        self.restarts = 0

    def _start(self, index: int) -> None:
        # Its own session: a terminal's Ctrl-C reaches the supervisor, which passes it on once.
        child = subprocess.Popen(self._command(index), start_new_session=True)
        self._children[index] = child
        self._started[index] = time.monotonic()
        log.info("worker %d started: pid %d", index, child.pid)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)
        self._stopping.set()
        for child in self._children.values():
            if child.poll() is None:
                child.send_signal(signum)

    def run(self) -> int:
        """Start the children and keep them running; after SIGTERM/SIGINT (passed on to
        them) wait for all to exit. Return 0 when every child exited 0 at the stop."""
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for index in range(self._count):
                self._start(index)
            while not self._stopping.is_set():
                self._restart_dead()
                self._stopping.wait(0.2)
            codes = [child.wait() for child in self._children.values()]
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        log.info("all workers stopped: exit codes %s", codes)
        return 0 if all(code == 0 for code in codes) else 1

    def _restart_dead(self) -> None:
        now = time.monotonic()
        for index, child in list(self._children.items()):
            code = child.poll()
            if code is None or self._stopping.is_set():
                continue
            pause = self._pause.get(index, 0.0)
            if now - self._started[index] < QUICK_DEATH_SECONDS:
                pause = min(MAX_RESTART_PAUSE, max(0.5, pause * 2))
            else:
                pause = 0.0
            self._pause[index] = pause
            log.warning(
                "worker %d (pid %d) exited with code %d; starting it again%s",
                index,
                child.pid,
                code,
                f" in {pause:g}s" if pause else "",
            )
            if pause and self._stopping.wait(pause):
                return
            self.restarts += 1
            self._start(index)
