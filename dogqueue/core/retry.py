"""The retry policy: exponential backoff with jitter drawn by the caller."""

from __future__ import annotations

from datetime import timedelta

#: The error recorded when a lease runs out: an expired lease is a failed attempt.
LEASE_EXPIRED_ERROR = "lease expired"

_ONE_MICROSECOND = timedelta(microseconds=1)


def _micros(delta: timedelta) -> int:
    return delta // _ONE_MICROSECOND


def backoff(attempt: int, base: timedelta, maximum: timedelta) -> timedelta:
    """The un-jittered delay after failed attempt `attempt` (1-based):
    min(maximum, base * 2**(attempt-1)), exact for any attempt number."""
    base_us, max_us = _micros(base), _micros(maximum)
    if base_us <= 0:
        return timedelta(0)
    shift = max(attempt - 1, 0)
    # base_us << shift exceeds max_us once shift passes the bit-length gap: stop before
    # building a huge integer.
    if shift >= max_us.bit_length() + 1 or (base_us << shift) >= max_us:
        return maximum
    return timedelta(microseconds=base_us << shift)


def jittered(delay: timedelta, draw: float) -> timedelta:
    """Shorten `delay` to a point in [delay/2, delay] chosen by `draw` in [0, 1]."""
    draw = min(max(draw, 0.0), 1.0)
    delay_us = _micros(delay)
    half = delay_us // 2
    return timedelta(microseconds=min(delay_us, half + round((delay_us - half) * draw)))


def retry_delay(attempt: int, base: timedelta, maximum: timedelta, draw: float) -> timedelta:
    """The jittered delay after failed attempt `attempt`; always within
    [backoff/2, backoff] and never above `maximum`."""
    return jittered(backoff(attempt, base, maximum), draw)
