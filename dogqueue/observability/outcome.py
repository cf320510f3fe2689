"""How one execution of a job ended: the one vocabulary the worker reports and traces,
logs and metrics use."""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """How one execution (one attempt) of a job ended."""

    #: The job succeeded.
    COMPLETED = "completed"
    #: The attempt failed and a retry is scheduled.
    RETRYING = "retrying"
    #: The attempt failed for good (no retries left, or a permanent failure).
    FAILED = "failed"
    #: The lease ran out before an acknowledgement: a failed attempt recorded by the log
    #: (the reaper's `expired` event); the worker that held it reports LEASE_LOST.
    EXPIRED = "expired"
    #: Someone canceled the job while it ran.
    CANCELED = "canceled"
    #: The worker lost its lease (it expired, or another worker holds it now).
    LEASE_LOST = "lease_lost"
    #: The failure could not be recorded (the lease was gone); the log decides later.
    LOST = "lost"
    #: The worker gave the job back unfinished (not counted as an attempt).
    RELEASED = "released"
    #: The worker itself failed around the job.
    WORKER_ERROR = "worker_error"
    #: The job finished, but its result was refused: a cancel or another lease won.
    DISCARDED = "discarded"
    #: The job was stopped before its task started.
    NOT_STARTED = "not_started"

    @property
    def is_error(self) -> bool:
        """True when the execution went wrong (an error span, a WARNING line)."""
        return self in _ERRORS

    @property
    def is_failure(self) -> bool:
        """True when the job's attempt failed (counted as a failed attempt)."""
        return self in _FAILURES


_FAILURES = frozenset({Outcome.RETRYING, Outcome.FAILED, Outcome.EXPIRED})
_ERRORS = _FAILURES | {Outcome.LEASE_LOST, Outcome.LOST, Outcome.WORKER_ERROR}
