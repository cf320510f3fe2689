"""The dogqueue error hierarchy: every failure a caller can handle is one of these."""

from __future__ import annotations


class QueueError(Exception):
    """Base class of every error raised by dogqueue itself."""


class InvalidInput(QueueError, ValueError):
    """A value given to dogqueue is malformed; nothing was appended.

    `field` names the offending argument or attribute.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[InvalidInput], tuple[str, str]]:
        return (type(self), (self.field, self.reason))


class JobNotFound(QueueError, LookupError):
    """No job with this id exists in the caller's tenant."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {str(job_id)!r} not found")
        self.job_id = job_id

    def __reduce__(self) -> tuple[type[JobNotFound], tuple[str]]:
        return (type(self), (self.job_id,))


class JobAlreadyExists(QueueError):
    """The idempotency key is taken; `job_id` is the job that holds it."""

    def __init__(self, job_id: str, idempotency_key: str | None = None) -> None:
        owner = str(job_id)
        super().__init__(f"idempotency key {idempotency_key!r} already belongs to job {owner!r}")
        self.job_id = job_id
        self.idempotency_key = idempotency_key

    def __reduce__(self) -> tuple[type[JobAlreadyExists], tuple[str, str | None]]:
        return (type(self), (self.job_id, self.idempotency_key))


class LeaseLost(QueueError):
    """The lease is no longer valid: it expired, or the job was leased again."""

    def __init__(self, job_id: str, reason: str = "lease is no longer valid") -> None:
        super().__init__(f"job {str(job_id)!r}: {reason}")
        self.job_id = job_id
        self.reason = reason

    def __reduce__(self) -> tuple[type[LeaseLost], tuple[str, str]]:
        return (type(self), (self.job_id, self.reason))


class JobCanceled(QueueError):
    """The job was canceled; its lease holder must stop and report nothing."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {str.__str__(job_id)} was canceled")
        self.job_id = job_id

    def __reduce__(self) -> tuple[type[JobCanceled], tuple[str]]:
        return (type(self), (self.job_id,))


class InvalidJobType(QueueError):
    """The job type (or job class) is not registered with the adapter."""

    def __init__(self, job_type: str) -> None:
        super().__init__(f"job type {job_type!r} is not registered")
        self.job_type = job_type

    def __reduce__(self) -> tuple[type[InvalidJobType], tuple[str]]:
        return (type(self), (self.job_type,))


class InvalidTransition(QueueError):
    """An event does not apply to the job's current state (a corrupt or foreign log)."""


class StorageError(QueueError):
    """The storage backend failed (disk, lock, corruption); the operation did not commit."""


class CorruptLog(StorageError):
    """A stored row does not decode (a corrupt or tampered file); the message names the
    row. `dogqueue verify` lists every such row."""


class BackendClosed(QueueError):
    """The backend was used after `close()`."""
