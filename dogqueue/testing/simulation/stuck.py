"""What a teardown that does not end is waiting for: each task left, with the chain of
awaits it is suspended in and the future at its end, and what the backend still holds.

A soak's teardown waits a bounded time for the tasks it cancelled and for the backend's
close (`run.SOAK_TEARDOWN_SECONDS`); past it, this report names what was stuck, so that
a hang seen once names its task and its line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import FrameType
from typing import Any

#: Awaits followed down from a task's coroutine (a cycle cannot occur; a bound anyway).
MAX_DEPTH = 64


def describe_tasks(tasks: Iterable[asyncio.Task[Any]]) -> list[str]:
    """One line per task, then one per frame it is suspended in (outermost first), in
    order of the tasks' names."""
    lines: list[str] = []
    for task in sorted(tasks, key=lambda t: t.get_name()):
        lines.extend(describe_task(task))
    return lines


def describe_task(task: asyncio.Task[Any]) -> list[str]:
    """The task (name, state, coroutine), where it is suspended, and on what."""
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", type(coro).__name__)
    state = "done" if task.done() else f"cancelling {task.cancelling()}"
    lines = [f"task {task.get_name()} ({state}): {name}"]
    lines.extend(f"  at {where}" for where in awaits(coro))
    waiter = getattr(task, "_fut_waiter", None)  # asyncio's own; absent elsewhere
    if waiter is not None:
        lines.append(f"  waits for {waiter!r}")
    return lines


def awaits(coro: object) -> list[str]:
    """file:line in function, for each coroutine or generator in the chain of awaits
    (`Task.get_stack` gives the outermost frame only)."""
    found: list[str] = []
    current: Any = coro
    for _ in range(MAX_DEPTH):
        frame = _frame(current)
        if frame is None:
            if current is not None and current is not coro:
                found.append(f"awaiting {type(current).__qualname__}")
            break
        code = frame.f_code
        found.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        current = _awaited(current)
    return found


def _frame(obj: object) -> FrameType | None:
    for attribute in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(obj, attribute, None)
        if isinstance(frame, FrameType):
            return frame
    return None


def _awaited(obj: object) -> object:
    for attribute in ("cr_await", "gi_yieldfrom", "ag_await"):
        inner = getattr(obj, attribute, None)
        if inner is not None:
            return inner
    return None


def describe_backend(backend: object) -> list[str]:
    """What the backend says it holds (`holding()`, where it has one)."""
    holding = getattr(backend, "holding", None)
    if holding is None:
        return [f"backend {type(backend).__name__}: no holding() to report"]
    try:
        return [f"backend: {holding()}"]
    except Exception as error:  # a report must not fail the teardown it describes
        return [f"backend: holding() raised {error!r}"]
