"""One structured log line per job start, finish and failure, under the `dogqueue` logger.

Every record carries `tenant_id`, `job_id`, `job_type`, `queue` and `attempt` as
attributes (finish and failure also `outcome` and `duration_seconds`, failures
`error_type`); payloads and results are never logged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from dogqueue.core.job import LeasedJob
from dogqueue.observability.outcome import Outcome

#: The logger of job lifecycle lines (a child of the `dogqueue` logger).
job_logger = logging.getLogger("dogqueue.jobs")

#: Attributes dogqueue adds to its job records.
JOB_FIELDS: tuple[str, ...] = (
    "tenant_id",
    "job_id",
    "job_type",
    "queue",
    "attempt",
    "outcome",
    "duration_seconds",
    "error_type",
)


def _fields(lease: LeasedJob) -> dict[str, Any]:
    return {
        "tenant_id": lease.tenant_id,
        "job_id": lease.job_id,
        "job_type": lease.message.job_type,
        "queue": lease.message.queue,
        "attempt": lease.attempt,
    }


def _text(event: str, fields: dict[str, Any]) -> str:
    return event + " " + " ".join(f"{key}={value}" for key, value in fields.items())


def log_job_started(lease: LeasedJob) -> None:
    """Log that a worker started executing `lease` (INFO)."""
    if job_logger.isEnabledFor(logging.INFO):
        fields = _fields(lease)
        job_logger.info(_text("job started", fields), extra=fields)


def log_job_finished(
    lease: LeasedJob,
    outcome: Outcome,
    duration_seconds: float,
    error: BaseException | None = None,
) -> None:
    """Log how an execution ended: INFO when it completed, WARNING otherwise. Only the
    error's type is logged, since its message may carry payload data."""
    level = logging.INFO if outcome is Outcome.COMPLETED and error is None else logging.WARNING
    if not job_logger.isEnabledFor(level):
        return
    fields = _fields(lease)
    fields["outcome"] = outcome.value
    fields["duration_seconds"] = round(duration_seconds, 6)
    if error is not None:
        fields["error_type"] = type(error).__name__
    if level == logging.INFO:
        event = "job finished"
    elif outcome.is_failure:
        event = "job failed"
    else:  # canceled, lease lost, released...: the job did not fail, it was stopped
        event = "job stopped"
    job_logger.log(level, _text(event, fields), extra=fields)


class JsonLogFormatter(logging.Formatter):
    """Formats records as one JSON object per line, with dogqueue's job fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in JOB_FIELDS:
            if name in record.__dict__:
                document[name] = record.__dict__[name]
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)
