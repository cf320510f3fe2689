"""Cron schedules, pure: which ticks of a schedule are due at a given time, and the
idempotency key that makes each tick one job. No clock is read here: `now` is given.

Expressions are parsed and walked by the `cronsim` library (the `cron` extra), imported
on first use. It follows Debian cron across daylight-saving changes: a job at a fixed
local time that falls in a skipped hour runs once, just after the jump; one in a
repeated hour runs once, at its first occurrence; expressions with a wildcard minute or
hour tick in real (UTC) time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from dogqueue.core.config import QueueConfig
from dogqueue.core.errors import InvalidInput
from dogqueue.core.message import JobMessage
from dogqueue.core.validation import check_batch, check_int_between, check_name

if TYPE_CHECKING:
    from cronsim import CronSim

#: Every schedule's idempotency keys start with this; keys look like
#: "dogqueue.cron:NAME@2030-01-01T02:30Z" (the tick in UTC, to the minute).
KEY_NAMESPACE = "dogqueue.cron:"
#: Separates a schedule's name from its tick in a key (so names may not contain it).
KEY_SEPARATOR = "@"
#: The longest schedule name (its keys must fit the 256-character key limit).
MAX_SCHEDULE_NAME = 200
#: The most missed ticks a schedule may catch up.
MAX_CATCH_UP = 1000
#: A schedule none of whose ticks was ever enqueued starts with its latest tick only if
#: that tick came at most this long ago (so a new daily schedule deployed at noon
#: waits for its next tick instead of running at once).
FIRST_TICK_GRACE = timedelta(minutes=1)
_TICK_FORMAT = "%Y-%m-%dT%H:%MZ"

#: The crontab(5) shorthands and the five fields each stands for.
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A schedule as storage sees it: checked fields and the message each tick's job
    gets (with the tick's key and `run_at` filled in)."""

    name: str
    #: Five fields (aliases already expanded).
    cron: str
    #: An IANA time zone name.
    timezone: str
    #: At most how many missed ticks are enqueued after a pause (1: the latest only).
    catch_up: int
    message: JobMessage


def tick_messages(spec: ScheduleSpec, latest_key: str | None, now: datetime) -> list[JobMessage]:
    """The messages of the schedule's ticks due at `now`, oldest first, given the
    greatest key of its enqueued ticks (None: none yet)."""
    ticks = due_ticks(
        spec.cron,
        parse_timezone(spec.timezone),
        last=tick_of_key(spec.name, latest_key),
        now=now,
        catch_up=spec.catch_up,
    )
    keyed = [(tick_key(spec.name, t), t) for t in ticks]
    # Only keys after the greatest are known to be free (a key in the namespace that is
    # not a tick, made by hand, holds the schedule back rather than risk a second job).
    return [
        msgspec.structs.replace(spec.message, idempotency_key=key, run_at=t)
        for key, t in keyed
        if latest_key is None or key > latest_key
    ]


def _cronsim() -> type[CronSim]:
    try:
        from cronsim import CronSim
    except ImportError as error:  # pragma: no cover (the test extra installs it)
        raise ImportError(
            "dogqueue schedules need the 'cron' extra: pip install 'dogqueue[cron]'"
        ) from error
    return CronSim


def parse_cron(expression: object) -> str:
    """The five-field cron expression `expression` stands for (an alias such as
    "@hourly" is expanded); InvalidInput("cron") if it is not one that ever fires."""
    if not isinstance(expression, str):
        raise InvalidInput("cron", f"must be a str, not {type(expression).__name__}")
    return _parse_cron(expression)


@lru_cache(maxsize=1024)
def _parse_cron(expression: str) -> str:
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            known = ", ".join(sorted(ALIASES))
            raise InvalidInput("cron", f"unknown alias {text!r} (known: {known})")
        text = ALIASES[text.lower()]
    if len(text.split(" ")) != 5:
        raise InvalidInput(
            "cron", f"must have 5 fields (minute hour day month weekday), not {expression!r}"
        )
    cron_sim = _cronsim()
    try:
        next(cron_sim(text, datetime(2000, 1, 1, tzinfo=UTC)))
    except StopIteration as error:
        raise InvalidInput("cron", f"{expression!r} never fires") from error
    except Exception as error:  # cronsim raises CronSimError, and ValueError on some input
        raise InvalidInput("cron", f"{expression!r} is not a valid expression: {error}") from error
    return text


def parse_timezone(name: object) -> ZoneInfo:
    """The IANA time zone named `name` (or `name` itself if it is a ZoneInfo);
    InvalidInput("timezone") if there is none by that name."""
    if isinstance(name, ZoneInfo):
        if not name.key:
            raise InvalidInput("timezone", "a ZoneInfo made from a file has no name to store")
        return name
    if not isinstance(name, str) or not name:
        raise InvalidInput("timezone", "must be an IANA time zone name such as 'Europe/Berlin'")
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise InvalidInput("timezone", f"unknown time zone {name!r}") from error


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_schedule_name(name: object) -> str:
    """`name` if it can name a schedule: a usable name without KEY_SEPARATOR, short
    enough for its keys."""
    checked = check_name("name", name)
    if KEY_SEPARATOR in checked:
        raise InvalidInput("name", f"must not contain {KEY_SEPARATOR!r}")
    if len(checked) > MAX_SCHEDULE_NAME:
        raise InvalidInput("name", f"must be at most {MAX_SCHEDULE_NAME} characters")
    return checked


def check_catch_up(value: object) -> int:
    """`value` if it is a number of missed ticks to catch up: an int in 1..1000."""
    return check_int_between("catch_up", value, 1, MAX_CATCH_UP)


def check_schedule(schedule: object, config: QueueConfig) -> ScheduleSpec:
    """`schedule` if every field of it is acceptable (InvalidInput naming the field); its
    message is checked as enqueue checks one, with a tick's key and no `run_at`."""
    if not isinstance(schedule, ScheduleSpec):
        raise InvalidInput("schedule", f"must be a ScheduleSpec, not {type(schedule).__name__}")
    name = check_schedule_name(schedule.name)
    if parse_cron(schedule.cron) != schedule.cron:
        raise InvalidInput("cron", "must be given as its five fields (see parse_cron)")
    parse_timezone(schedule.timezone)
    check_catch_up(schedule.catch_up)
    sample = tick_key(name, datetime(2000, 1, 1, tzinfo=UTC))
    check_batch(
        (msgspec.structs.replace(schedule.message, idempotency_key=sample, run_at=None),), config
    )
    return schedule


def key_prefix(name: str) -> str:
    """What every idempotency key of the schedule `name` starts with."""
    return f"{KEY_NAMESPACE}{name}{KEY_SEPARATOR}"


def prefix_end(prefix: str) -> str:
    """The least string greater than every string that starts with `prefix` (in code
    point order): keys with the prefix lie in [prefix, prefix_end(prefix))."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def tick_key(name: str, tick: datetime) -> str:
    """The idempotency key of the schedule's job for `tick`. Keys of one schedule sort
    as their ticks do."""
    return key_prefix(name) + tick.astimezone(UTC).strftime(_TICK_FORMAT)


def tick_of_key(name: str, key: str | None) -> datetime | None:
    """The tick a key of the schedule `name` stands for (None for None or a key that is
    not one of the schedule's)."""
    prefix = key_prefix(name)
    if key is None or not key.startswith(prefix):
        return None
    try:
        tick = datetime.fromisoformat(key[len(prefix) :])
    except ValueError:
        return None
    # Only the exact form tick_key writes (fromisoformat accepts others too).
    return tick if tick.tzinfo is not None and tick_key(name, tick) == key else None


def schedule_name_of_key(key: str | None) -> str | None:
    """The schedule a key belongs to, or None if it is not a schedule's key."""
    if key is None or not key.startswith(KEY_NAMESPACE):
        return None
    name, separator, _ = key[len(KEY_NAMESPACE) :].rpartition(KEY_SEPARATOR)
    return name if separator and tick_of_key(name, key) is not None else None


def _local(moment: datetime, zone: tzinfo) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInput("now", "must be timezone-aware")
    return moment.astimezone(zone)


def latest_ticks(
    cron: str, zone: ZoneInfo, now: datetime, limit: int, *, after: datetime | None = None
) -> list[datetime]:
    """Up to `limit` ticks at or before `now` (and after `after`), newest first, in UTC."""
    # Walking backwards starts one second after `now` truncated, so a tick at `now` counts
    # (the second is added in UTC: local arithmetic would lose a repeated hour's fold).
    start = _local(_local(now, UTC).replace(microsecond=0) + timedelta(seconds=1), zone)
    walk = _cronsim()(cron, start, reverse=True)
    ticks: list[datetime] = []
    for tick in walk:
        moment = tick.astimezone(UTC)
        if after is not None and moment <= after:
            break
        ticks.append(moment)
        if len(ticks) >= limit:
            break
    return ticks


def next_tick(cron: str, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first tick strictly after `after`, in UTC (None if it never fires again)."""
    walk = _cronsim()(cron, _local(after, zone))
    tick: datetime | None = next(walk, None)
    return None if tick is None else tick.astimezone(UTC)


def due_ticks(
    cron: str,
    zone: ZoneInfo,
    *,
    last: datetime | None,
    now: datetime,
    catch_up: int,
    first_grace: timedelta = FIRST_TICK_GRACE,
) -> list[datetime]:
    """The ticks to enqueue at `now`, oldest first: those after `last` (the newest tick
    already enqueued) and at or before `now`, at most the newest `catch_up` of them.
    With no `last`, only the latest tick, and only if it came within `first_grace`."""
    if last is None:
        latest = latest_ticks(cron, zone, now, 1)
        return [t for t in latest if now - t <= first_grace]
    ticks = latest_ticks(cron, zone, now, catch_up, after=last)
    ticks.reverse()
    return ticks


def describe(cron: str) -> str:
    """The expression in words (e.g. "At 02:30"), as cronsim explains it."""
    explained: Any = _cronsim()(cron, datetime(2000, 1, 1, tzinfo=UTC)).explain()
    return str(explained)
