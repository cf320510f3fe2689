"""Tunable queue settings shared by the core and every backend."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from dogqueue.core.errors import InvalidInput

#: The longest lease a caller may ask for (`lease_duration`, `default_lease_duration`):
#: longer work keeps its lease with heartbeats. A bound keeps every expiry time
#: representable.
MAX_LEASE_DURATION = timedelta(days=7)
#: The longest retry delay a configuration may name (`max_retry_backoff`,
#: `base_retry_backoff`): a retry time stays representable from any current time.
MAX_RETRY_BACKOFF = timedelta(days=366)


class QueueConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Settings that govern leases, retries, maintenance and payload limits."""

    #: How long a lease lasts when the caller names no duration.
    default_lease_duration: timedelta = timedelta(minutes=5)
    #: The longest delay before a retry, whatever the attempt number.
    max_retry_backoff: timedelta = timedelta(hours=1)
    #: How often a worker's reaper returns expired leases to the queue.
    reaper_interval: timedelta = timedelta(minutes=1)
    #: The delay before the first retry; it doubles with each further attempt.
    base_retry_backoff: timedelta = timedelta(seconds=1)
    #: The largest accepted payload, in bytes (exactly this size is accepted).
    max_payload_bytes: int = 1_048_576

    def __post_init__(self) -> None:
        for name in ("default_lease_duration", "reaper_interval"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise InvalidInput(name, "must be a positive timedelta")
        if self.default_lease_duration > MAX_LEASE_DURATION:
            raise InvalidInput("default_lease_duration", f"must be at most {MAX_LEASE_DURATION}")
        for name in ("max_retry_backoff", "base_retry_backoff"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise InvalidInput(name, "must be a non-negative timedelta")
            if value > MAX_RETRY_BACKOFF:
                raise InvalidInput(name, f"must be at most {MAX_RETRY_BACKOFF}")
        if isinstance(self.max_payload_bytes, bool) or not isinstance(self.max_payload_bytes, int):
            raise InvalidInput("max_payload_bytes", "must be an int")
        if self.max_payload_bytes < 0:
            raise InvalidInput("max_payload_bytes", "must not be negative")
