"""Checks on caller input; each failure is an InvalidInput naming the field."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from dogqueue.core.config import MAX_LEASE_DURATION, QueueConfig
from dogqueue.core.errors import InvalidInput, JobNotFound
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.status import JobPriority

#: The longest tenant id, queue name, job type or idempotency key, in characters.
MAX_NAME_LENGTH = 256
#: The largest accepted `max_retries`.
MAX_RETRIES_LIMIT = 1000
# Unicode category Cc is exactly U+0000..U+001F and U+007F..U+009F.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
# The only str characters UTF-8 cannot encode.
_SURROGATE = re.compile("[\ud800-\udfff]")


#: Names of these fields that passed `check_name` (exact str only): the same tenant ids,
#: queues and job types come back on every call, so a set lookup replaces the scans.
#: Bounded: cleared when full, so a stream of distinct names costs memory up to the bound.
_ACCEPTED_NAMES: set[str] = set()
_ACCEPTED_NAMES_MAX = 4096
_REPEATED_FIELDS = frozenset({"tenant_id", "queue", "job_type", "codec"})


def check_name(field: str, value: object) -> str:
    """Return `value` if it is a usable name: a non-empty str of at most 256 characters,
    with no control characters."""
    if type(value) is str and value in _ACCEPTED_NAMES:
        return value
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a str, not {type(value).__name__}")
    if not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInput(field, f"must be at most {MAX_NAME_LENGTH} characters")
    if _CONTROL_CHARACTER.search(value):
        raise InvalidInput(field, "must not contain control characters")
    if not is_encodable(value):
        raise InvalidInput(field, "must be valid Unicode (it holds a lone surrogate)")
    if type(value) is str and field in _REPEATED_FIELDS:
        if len(_ACCEPTED_NAMES) >= _ACCEPTED_NAMES_MAX:
            _ACCEPTED_NAMES.clear()
        _ACCEPTED_NAMES.add(value)
    return value


def is_encodable(text: str) -> bool:
    """True if `text` can be stored: UTF-8 encodes it (no lone surrogates)."""
    # ASCII (every generated job id) holds none: a flag read, not a scan.
    return text.isascii() or _SURROGATE.search(text) is None


#: The longest progress message kept (longer ones are cut).
MAX_PROGRESS_MESSAGE = 1_000


def check_progress(progress: float | None, message: str | None) -> tuple[float, str | None] | None:
    """A heartbeat's reported progress, checked: a number from 0 to 1 and an optional
    message (made recordable, cut to MAX_PROGRESS_MESSAGE); None when none is reported."""
    if progress is None:
        if message is not None:
            raise InvalidInput("progress", "is needed with a progress_message")
        return None
    if isinstance(progress, bool) or not isinstance(progress, (int, float)):
        raise InvalidInput("progress", "must be a number from 0 to 1")
    if not 0 <= progress <= 1:
        raise InvalidInput("progress", "must be a number from 0 to 1")
    if message is not None and not isinstance(message, str):
        raise InvalidInput("progress_message", "must be a str or None")
    text = None if message is None else recordable_text(message)[:MAX_PROGRESS_MESSAGE]
    return float(progress), text


def recordable_text(text: str) -> str:
    """`text` with every character UTF-8 cannot encode (a lone surrogate, e.g. from an
    undecodable file name) replaced by U+FFFD, so that it can always be stored."""
    return _SURROGATE.sub("\ufffd", text)


def check_ctx(ctx: object) -> str:
    """Return the tenant id of a valid QueueCtx."""
    if not isinstance(ctx, QueueCtx):
        raise InvalidInput("ctx", f"must be a QueueCtx, not {type(ctx).__name__}")
    return check_name("tenant_id", ctx.tenant_id)


def check_job_id(job_id: object) -> str:
    """Return `job_id` if it is a str; unknown ids (and ids no job can have, such as
    one holding a lone surrogate) are JobNotFound, not InvalidInput."""
    if not isinstance(job_id, str):
        raise InvalidInput("job_id", f"must be a str, not {type(job_id).__name__}")
    if not is_encodable(job_id):
        raise JobNotFound(job_id)
    return job_id


def check_aware(field: str, value: object) -> datetime:
    """Return `value` if it is a timezone-aware datetime that has a UTC equivalent
    (its zone gives a valid offset, and converting it to UTC does not overflow)."""
    if not isinstance(value, datetime):
        raise InvalidInput(field, f"must be a datetime, not {type(value).__name__}")
    try:
        offset = value.utcoffset()
    except (ValueError, TypeError) as error:
        raise InvalidInput(field, f"has an invalid timezone: {error}") from error
    if value.tzinfo is None or offset is None:
        raise InvalidInput(field, "must be timezone-aware")
    try:
        value.astimezone(UTC)
    except OverflowError as error:
        raise InvalidInput(field, "is out of range once converted to UTC") from error
    return value


def check_duration(field: str, value: object) -> timedelta:
    """Return `value` if it is a positive timedelta."""
    if not isinstance(value, timedelta):
        raise InvalidInput(field, f"must be a timedelta, not {type(value).__name__}")
    if value <= timedelta(0):
        raise InvalidInput(field, "must be positive")
    return value


def check_lease_duration(value: object) -> timedelta:
    """Return `value` if it is a positive timedelta of at most MAX_LEASE_DURATION."""
    duration = check_duration("lease_duration", value)
    if duration > MAX_LEASE_DURATION:
        raise InvalidInput("lease_duration", f"must be at most {MAX_LEASE_DURATION}")
    return duration


def check_max_retries(value: object) -> int:
    """Return `value` if it is an int in 0..1000."""
    return check_int_between("max_retries", value, 0, MAX_RETRIES_LIMIT)


def check_int_between(field: str, value: object, low: int, high: int) -> int:
    """Return `value` if it is an int (not a bool) in low..high."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidInput(field, f"must be between {low} and {high}")
    return value


def check_priority(value: object) -> JobPriority:
    """Return `value` if it is a JobPriority member."""
    if not isinstance(value, JobPriority):
        raise InvalidInput("priority", f"must be a JobPriority, not {value!r}")
    return value


def check_queues(queues: object) -> tuple[str, ...]:
    """Return a non-empty sequence of queue names (not a bare str) as a tuple."""
    if isinstance(queues, (str, bytes)) or not isinstance(queues, Sequence):
        raise InvalidInput("queues", "must be a list of queue names, not a single string")
    if not queues:
        raise InvalidInput("queues", "must not be empty")
    return tuple(dict.fromkeys(check_name("queue", q) for q in queues))


def check_message(message: object, config: QueueConfig) -> JobMessage:
    """Return `message` if every field of it is acceptable under `config`."""
    if not isinstance(message, JobMessage):
        raise InvalidInput("message", f"must be a JobMessage, not {type(message).__name__}")
    check_name("job_type", message.job_type)
    if not isinstance(message.payload_bytes, bytes):
        raise InvalidInput("payload_bytes", "must be bytes")
    if len(message.payload_bytes) > config.max_payload_bytes:
        raise InvalidInput(
            "payload_bytes",
            f"is {len(message.payload_bytes)} bytes, over the limit of {config.max_payload_bytes}",
        )
    check_name("codec", message.codec)
    check_name("queue", message.queue)
    check_priority(message.priority)
    check_max_retries(message.max_retries)
    if message.run_at is not None:
        check_aware("run_at", message.run_at)
    if message.idempotency_key is not None:
        check_name("idempotency_key", message.idempotency_key)
    _check_parents(message)
    return message


#: Most parents one job may wait for.
MAX_PARENTS = 100_000


def _check_parents(message: JobMessage) -> None:
    """`after`, `after_earlier` and `on_parent_failure` have the right shapes (whether
    the parents exist is for the engine to say)."""
    after, earlier = message.after, message.after_earlier
    if after == () and earlier == () and message.on_parent_failure == "cancel":
        return  # no parents: the common case, nothing to check
    if not isinstance(after, tuple):
        raise InvalidInput("after", f"must be a tuple of job ids, not {type(after).__name__}")
    for parent in after:
        check_name("after", parent)
    if not isinstance(earlier, tuple) or any(
        isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in earlier
    ):
        raise InvalidInput("after_earlier", "must be a tuple of message indexes (int >= 0)")
    if len(set(after)) != len(after):
        raise InvalidInput("after", "names a parent twice")
    if len(set(earlier)) != len(earlier):
        raise InvalidInput("after_earlier", "names a message twice")
    if len(after) + len(earlier) > MAX_PARENTS:
        raise InvalidInput("after", f"names more than {MAX_PARENTS} parents")
    if message.on_parent_failure not in ("cancel", "run"):
        raise InvalidInput("on_parent_failure", 'must be "cancel" or "run"')


def check_earlier(messages: Sequence[JobMessage]) -> None:
    """Each `after_earlier` index names a message before its own in the same call, so
    the dependencies of one call point backwards too and can form no cycle."""
    for position, message in enumerate(messages):
        for index in message.after_earlier:
            if index >= position:
                raise InvalidInput(
                    "after_earlier",
                    f"message {position} names message {index}: only earlier messages"
                    " of the same call can be parents",
                )


def check_trace_context(value: object) -> dict[str, str] | None:
    """Return `value` if it is None or a dict of str to str that UTF-8 can encode."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("trace_context", f"must be a dict, not {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise InvalidInput("trace_context", "keys and values must be str")
        if not (is_encodable(key) and is_encodable(item)):
            raise InvalidInput("trace_context", "must be valid Unicode (it holds a lone surrogate)")
    return value


def check_batch_keys(messages: Sequence[JobMessage]) -> None:
    """Reject a batch that repeats an idempotency key."""
    seen: set[str] = set()
    for message in messages:
        key = message.idempotency_key
        if key is None:
            continue
        if key in seen:
            raise InvalidInput("idempotency_key", f"{key!r} appears twice in one batch")
        seen.add(key)


class PreparedEnqueue(NamedTuple):
    """One enqueue call's input after every check: the tenant, the messages in order
    (`after_earlier` indexes checked), and the trace context to record."""

    tenant_id: str
    messages: tuple[JobMessage, ...]
    trace_context: dict[str, str] | None = None


def prepare_enqueue(
    ctx: object,
    messages: object,
    config: QueueConfig,
    *,
    trace_context: object = None,
) -> PreparedEnqueue:
    """Every input check of an enqueue, whichever path it takes (`enqueue`,
    `enqueue_many`, workflows, transactional enqueue; schedule ticks check their message
    through `check_batch`): InvalidInput naming the field, before anything is written."""
    return PreparedEnqueue(
        check_ctx(ctx), check_batch(messages, config), check_trace_context(trace_context)
    )


def check_batch(messages: object, config: QueueConfig) -> tuple[JobMessage, ...]:
    """The messages of one enqueue call, if each passes `check_message` and together
    they repeat no idempotency key and every `after_earlier` names an earlier one."""
    given: Sequence[object]
    if type(messages) is tuple or type(messages) is list:  # the usual kinds: no ABC check
        given = messages
    elif isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise InvalidInput("messages", "must be a list of JobMessage")
    else:
        given = messages
    if len(given) == 1:  # one call, one job: the usual enqueue
        batch: tuple[JobMessage, ...] = (check_message(given[0], config),)
    else:
        batch = tuple([check_message(message, config) for message in given])
        check_batch_keys(batch)  # one message repeats no key
    check_earlier(batch)
    return batch
