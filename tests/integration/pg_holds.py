"""Holding a PostgreSQL backend's flushes open, so that a test decides which of its
batches in flight writes first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dogqueue.backend.postgres import PostgresBackend


def hold_flushes(
    backend: PostgresBackend, held: Callable[[int], asyncio.Event | None]
) -> list[asyncio.Event]:
    """Make the backend's `n`th flush (from 0) wait for `held(n)` before its statement;
    the `n`th event returned is set when the `n`th flush is reached."""
    flush = backend._flush
    reached = [asyncio.Event() for _ in range(4)]
    calls = 0

    async def holding(*args: Any) -> None:
        nonlocal calls
        n = calls
        calls += 1
        if n < len(reached):
            reached[n].set()
        gate = held(n)
        if gate is not None:
            await gate.wait()
        await flush(*args)

    backend._flush = holding  # type: ignore[method-assign,assignment]
    return reached
