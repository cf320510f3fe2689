"""Job statuses and priorities."""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    """Where a job is in its life. Terminal statuses never change again (cancel wins)."""

    #: Waiting to be leased, once its `run_at` has come.
    ENQUEUED = "enqueued"
    #: Held by a worker under a lease with a fencing token, until it expires.
    LEASED = "leased"
    #: Finished successfully; terminal.
    COMPLETED = "completed"
    #: Failed with no retry left, or failed permanently; terminal (a dead letter).
    FAILED = "failed"
    #: Canceled by a caller; terminal, and wins over any later acknowledgement.
    CANCELED = "canceled"
    #: Created after other jobs (`JobMessage.after`) that have not all finished yet;
    #: never leased until its last parent completes (then ENQUEUED).
    WAITING = "waiting"

    @property
    def is_terminal(self) -> bool:
        """True for COMPLETED, FAILED and CANCELED."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})


class JobPriority(enum.IntEnum):
    """Dequeue order within a queue: HIGH before NORMAL before LOW."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
