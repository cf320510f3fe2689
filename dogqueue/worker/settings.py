"""A worker's settings: one frozen value that checks itself when made."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import msgspec

from dogqueue.core import validation as check
from dogqueue.core.config import QueueConfig
from dogqueue.core.errors import InvalidInput
from dogqueue.core.message import QueueCtx
from dogqueue.observability.logging import error_text_from_environment
from dogqueue.schedules import Schedule, check_schedules

#: How long discovered tenants are trusted before `ready_tenants` is asked again.
TENANT_REFRESH_SECONDS = 1.0
#: The shortest idle wait, so a due job that cannot be leased yet never spins the loop.
MIN_IDLE_SECONDS = 0.05
#: How often the worker reads the state of its own running jobs to see cancels made by
#: other processes (cheap: one read per running job), so a cancel lands within ~2 s.
CANCEL_CHECK_SECONDS = 0.5
#: A loop blocked this long gets a warning naming the job that blocks it.
BLOCKED_LOOP_SECONDS = 1.0
#: How long a job nobody here can run (unknown type, payload that does not decode) is
#: given back for a newer worker before it fails, and how long it is held each time.
DEPLOY_GRACE = timedelta(minutes=10)
DEPLOY_HOLD = timedelta(seconds=5)
#: After giving such a job back, the worker leases nothing of that tenant for this long,
#: so workers of other processes (which see the release within ~20 ms) can take it.
DEPLOY_YIELD_SECONDS = 0.5
#: While waiting for the clock's next minute boundary, the schedule loop rereads the
#: clock this often (reading it costs nothing; a fake clock moved by a test is seen).
SCHEDULE_RECHECK_SECONDS = 1.0


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How a `Worker` runs (see `Worker` for what each setting does). Each bad field is
    refused with InvalidInput naming it, when the settings are made.

    `lease_duration` and `reaper_interval` left None take the adapter's `QueueConfig`
    values (`resolved`); `heartbeat_interval` None is a third of the lease."""

    tenants: tuple[QueueCtx, ...] | None = None
    #: The queues served; `("*",)` serves every queue in use.
    queues: tuple[str, ...] = ("default",)
    context: Any = None
    concurrency: int = 10
    tenant_concurrency: int | None = None
    lease_duration: timedelta | None = None
    heartbeat_interval: timedelta | None = None
    timeout: timedelta | None = None
    reaper_interval: timedelta | None = None
    shutdown_grace: timedelta = timedelta(seconds=30)
    max_idle: timedelta = timedelta(seconds=5)
    fast_cancel: bool = True
    handle_signals: bool = True
    context_factory: Callable[[QueueCtx], Any] | None = None
    on_startup: Callable[[Any], Awaitable[None]] | None = None
    on_shutdown: Callable[[Any], Awaitable[None]] | None = None
    cancel_check_interval: timedelta | None = timedelta(seconds=CANCEL_CHECK_SECONDS)
    sync_threads: int = 8
    #: None switches the loop watchdog (a thread of its own) off.
    blocked_loop_warning: timedelta | None = timedelta(seconds=BLOCKED_LOOP_SECONDS)
    deploy_grace: timedelta = DEPLOY_GRACE
    deploy_hold: timedelta = DEPLOY_HOLD
    schedules: tuple[Schedule, ...] = ()
    #: False keeps error text out of every log line (only error types are logged).
    log_error_text: bool = True

    def __post_init__(self) -> None:
        _check_scope(self)
        _check_limits(self)
        _check_durations(self)
        _check_hooks(self)

    @classmethod
    def of(cls, **options: Any) -> WorkerSettings:
        """Settings from `Worker`'s keyword arguments (lists accepted where the struct
        keeps tuples, `queues="*"` or a single name, `schedules=None`)."""
        if "schedules" in options:
            found = options["schedules"]
            options["schedules"] = () if found is None else tuple(check_schedules(found))
        if "queues" in options:
            options["queues"] = _queues_option(options["queues"])
        if "tenants" in options:
            options["tenants"] = _tenants_option(options["tenants"])
        return cls(**options)

    @property
    def error_text_logged(self) -> bool:
        """Whether log lines may hold error text: `log_error_text`, unless
        `$DOGQUEUE_LOG_NO_ERROR_TEXT` keeps it out."""
        return self.log_error_text and error_text_from_environment()

    @property
    def all_queues(self) -> bool:
        """Whether the worker serves every queue in use (`queues="*"`)."""
        return self.queues == ("*",)

    def resolved(self, config: QueueConfig) -> WorkerSettings:
        """These settings with the lease duration and reaper interval `config` gives
        where they were left None."""
        changes: dict[str, Any] = {}
        if self.lease_duration is None:
            changes["lease_duration"] = config.default_lease_duration
        if self.reaper_interval is None:
            changes["reaper_interval"] = config.reaper_interval
        return msgspec.structs.replace(self, **changes) if changes else self


def _queues_option(queues: object) -> tuple[str, ...]:
    if queues == "*" or (isinstance(queues, (list, tuple)) and list(queues) == ["*"]):
        return ("*",)
    return check.check_queues(queues)


def _tenants_option(tenants: object) -> tuple[QueueCtx, ...] | None:
    if tenants is None:
        return None
    if isinstance(tenants, (str, QueueCtx)) or not isinstance(tenants, Sequence):
        raise InvalidInput("tenants", "must be a list of QueueCtx or None")
    return tuple(tenants)


def _check_scope(settings: WorkerSettings) -> None:
    if settings.tenants is not None:
        _tenants_option(settings.tenants)
        for ctx in settings.tenants:
            check.check_ctx(ctx)
        if not settings.tenants:
            raise InvalidInput("tenants", "must not be empty (None serves every tenant)")
    if not settings.all_queues:
        check.check_queues(settings.queues)
    check_schedules(settings.schedules)


def _check_limits(settings: WorkerSettings) -> None:
    if not isinstance(settings.log_error_text, bool):
        raise InvalidInput("log_error_text", "must be a bool")
    for name in ("concurrency", "tenant_concurrency", "sync_threads"):
        limit = getattr(settings, name)
        if limit is None and name == "tenant_concurrency":
            continue
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput(name, "must be a positive int")


def _positive(name: str, value: object) -> float:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidInput(name, "must be a positive timedelta")
    return value.total_seconds()


def _check_durations(settings: WorkerSettings) -> None:
    for name in (
        "lease_duration",
        "heartbeat_interval",
        "timeout",
        "reaper_interval",
        "cancel_check_interval",
        "blocked_loop_warning",
    ):
        value = getattr(settings, name)
        if value is not None:
            _positive(name, value)
    _positive("max_idle", settings.max_idle)
    for name in ("shutdown_grace", "deploy_grace", "deploy_hold"):
        value = getattr(settings, name)
        if not isinstance(value, timedelta) or value < timedelta(0):
            raise InvalidInput(name, "must be a non-negative timedelta")


def _check_hooks(settings: WorkerSettings) -> None:
    if settings.context is not None and settings.context_factory is not None:
        raise InvalidInput("context_factory", "give either context or context_factory")
    if settings.context_factory is not None and not callable(settings.context_factory):
        raise InvalidInput("context_factory", "must be callable with a QueueCtx")


def seconds(value: timedelta | None) -> float | None:
    """`value` in seconds (None stays None)."""
    return None if value is None else value.total_seconds()
