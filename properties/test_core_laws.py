"""Laws of the pure core, as plain @given tests: decide and evolve agree, the fold is
deterministic, and events survive the codec."""

from __future__ import annotations

from datetime import timedelta

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from dogqueue.core.codec import decode_event, encode_event
from dogqueue.core.commands import Enqueue
from dogqueue.core.config import QueueConfig
from dogqueue.core.decide import decide
from dogqueue.core.errors import QueueError
from dogqueue.core.events import AnyEvent
from dogqueue.core.evolve import evolve
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import fold, rebuild
from dogqueue.core.retry import backoff, retry_delay
from properties.strategies import START, command_of, command_steps, messages

CONFIG = QueueConfig(
    base_retry_backoff=timedelta(seconds=1), max_retry_backoff=timedelta(minutes=5)
)


def play(
    message: object, steps: list[tuple[str, int, int, bool, timedelta, float, bool]]
) -> tuple[list[AnyEvent], JobInfo]:
    """Decide every step against the folded state; evolve must accept every event decide
    produced (a refused command produces none). Returns the log and the final state."""
    assert isinstance(message, msgspec.Struct)
    waiting = getattr(message, "after", ())  # every parent still running at first
    enqueue = Enqueue(tenant_id="t", job_id="j", at=START, message=message, waiting_for=waiting)  # type: ignore[arg-type]
    log: list[AnyEvent] = []
    state: JobInfo | None = None
    now = START
    for event in decide(None, enqueue, CONFIG):
        log.append(msgspec.structs.replace(event, seq=len(log) + 1))
        state = evolve(state, log[-1])
    for step in steps:
        assert state is not None
        now += timedelta(seconds=step[1])
        command = command_of(step, "t", "j", now, state.lease_token)
        try:
            events = decide(state, command, CONFIG)
        except QueueError:
            continue
        for event in events:
            log.append(msgspec.structs.replace(event, seq=len(log) + 1))
            state = evolve(state, log[-1])  # must not raise: evolve is total over decide
    assert state is not None
    return log, state


@given(messages, st.lists(command_steps, max_size=30))
def test_evolve_accepts_everything_decide_produces(
    message: object, steps: list[tuple[str, int, int, bool, timedelta, float, bool]]
) -> None:
    log, state = play(message, steps)
    assert state.version == len(log)
    assert [event.version for event in log] == list(range(1, len(log) + 1))


@given(messages, st.lists(command_steps, max_size=30))
def test_the_fold_is_deterministic(
    message: object, steps: list[tuple[str, int, int, bool, timedelta, float, bool]]
) -> None:
    log, state = play(message, steps)
    assert fold(log) == state
    assert fold(list(log)) == fold(log)
    assert rebuild(log) == {("t", "j"): state}
    assert rebuild(log) == rebuild(log)


@given(messages, st.lists(command_steps, max_size=30))
def test_events_survive_the_codec(
    message: object, steps: list[tuple[str, int, int, bool, timedelta, float, bool]]
) -> None:
    log, state = play(message, steps)
    decoded = [decode_event(encode_event(event), event.seq) for event in log]
    assert decoded == log
    assert [type(event) for event in decoded] == [type(event) for event in log]
    assert fold(decoded) == state


@given(st.integers(1, 10_000), st.floats(0.0, 1.0))
def test_retry_delay_stays_within_its_bounds(attempt: int, draw: float) -> None:
    base, maximum = CONFIG.base_retry_backoff, CONFIG.max_retry_backoff
    full = backoff(attempt, base, maximum)
    assert full == min(maximum, base * 2 ** min(attempt - 1, 30))
    delay = retry_delay(attempt, base, maximum, draw)
    assert full / 2 - timedelta(microseconds=1) <= delay <= full <= maximum
