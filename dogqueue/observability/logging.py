"""One structured log line per job start and one per outcome, under the `dogqueue`
logger; what a line may hold, and the switch that keeps error text out.

Every job record carries `tenant_id`, `job_id`, `job_type`, `queue` and `attempt` as
attributes; an outcome line also `outcome` and `duration_seconds`, a failure
`error_type` and (unless error text is kept out) `error`, the first line of the error;
a stopped or held job `reason`. Payloads and results are never logged.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from dogqueue.core.job import LeasedJob
from dogqueue.observability.outcome import Outcome

#: The logger of job lifecycle lines (a child of the `dogqueue` logger).
job_logger = logging.getLogger("dogqueue.jobs")

#: The environment variable that keeps error text out of every log line ("1", "true",
#: "yes" or "on"), for shops whose exception messages may carry secrets.
REDACT_ENV = "DOGQUEUE_LOG_NO_ERROR_TEXT"

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
    "error",
    "reason",
)

#: The longest error line a log record holds.
MAX_ERROR_LINE = 300


def error_text_from_environment() -> bool:
    """Whether error text may be logged, as `$DOGQUEUE_LOG_NO_ERROR_TEXT` says (unset:
    yes)."""
    return os.environ.get(REDACT_ENV, "").strip().lower() not in ("1", "true", "yes", "on")


def error_line(error: BaseException, error_text: bool) -> str:
    """The error's type and the first line of its message (`Type: first line`), or only
    its type when error text is kept out."""
    name = type(error).__name__
    if not error_text:
        return name
    message = getattr(error, "message", None)
    text = message if isinstance(message, str) else str(error)
    lines = text.strip().splitlines()
    return f"{name}: {lines[0] if lines else ''}"[:MAX_ERROR_LINE]


def log_unexpected(
    logger: logging.Logger, what: str, error: BaseException, error_text: bool
) -> None:
    """Log an unexpected error of the worker's own machinery at ERROR: with its
    traceback, or only its type when error text is kept out."""
    if error_text:
        logger.error("%s: %s", what, error_line(error, True), exc_info=error)
    else:
        logger.error("%s: %s", what, type(error).__name__)


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
    *,
    reason: str | None = None,
    error_text: bool = True,
) -> None:
    """Log how an execution ended, in one line: INFO when it completed, WARNING
    otherwise. A failure names the error's type and first line (only its type when
    `error_text` is False); `reason` says why a job was stopped or given back, and must
    hold no payload data."""
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
    text = _text(event, fields)
    if reason is not None:
        fields["reason"] = reason
        text += f" reason={reason}"
    if error is not None and error_text:
        fields["error"] = error_line(error, True)
        text += f" error={fields['error']}"
    traceback = error if outcome is Outcome.WORKER_ERROR and error_text else None
    job_logger.log(level, text, extra=fields, exc_info=traceback)


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
