"""The pure tick arithmetic (dogqueue.core.cron): laws over random moments in zones with
daylight-saving changes, keys, aliases, and the message when the extra is missing."""

from __future__ import annotations

import itertools
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dogqueue.core import cron
from dogqueue.core.errors import InvalidInput

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
EXPRESSIONS = ["30 2 * * *", "0 * * * *", "*/7 * * * *", "30 1 * * *", "0 2 * * 0", "15 3 1 * *"]
# Moments around 2030, down to the second, where every zone above changes its clocks.
moments = st.integers(0, 2 * 365 * 24 * 3600).map(
    lambda s: datetime(2029, 6, 1, tzinfo=UTC) + timedelta(seconds=s)
)


@settings(max_examples=300, deadline=None)
@given(
    now=moments,
    zone=st.sampled_from(ZONES),
    expression=st.sampled_from(EXPRESSIONS),
)
def test_latest_ticks_are_the_ticks_up_to_now_walking_back(
    now: datetime, zone: str, expression: str
) -> None:
    tz = ZoneInfo(zone)
    ticks = cron.latest_ticks(expression, tz, now, 3)
    assert len(ticks) == 3
    assert ticks[0] <= now
    # No tick lies between the latest and now, nor between consecutive ticks.
    assert (cron.next_tick(expression, tz, ticks[0]) or now) > now
    for newer, older in itertools.pairwise(ticks):
        assert cron.next_tick(expression, tz, older) == newer


@settings(max_examples=300, deadline=None)
@given(
    now=moments,
    back=st.integers(0, 30 * 24 * 60),
    catch_up=st.integers(1, 5),
    zone=st.sampled_from(ZONES),
    expression=st.sampled_from(EXPRESSIONS),
)
def test_due_ticks_follow_the_policy(
    now: datetime, back: int, catch_up: int, zone: str, expression: str
) -> None:
    tz = ZoneInfo(zone)
    last = cron.latest_ticks(expression, tz, now - timedelta(minutes=back), 1)[0]
    due = cron.due_ticks(expression, tz, last=last, now=now, catch_up=catch_up)
    assert due == sorted(set(due))
    assert len(due) <= catch_up
    assert all(last < tick <= now for tick in due)
    if due:  # the newest ticks: the newest is the latest, and none is skipped between
        assert due[-1] == cron.latest_ticks(expression, tz, now, 1)[0]
        for older, newer in itertools.pairwise(due):
            assert cron.next_tick(expression, tz, older) == newer
    else:
        assert (cron.next_tick(expression, tz, last) or now) > now


def test_a_schedule_with_no_tick_yet_starts_only_within_the_grace() -> None:
    tz = ZoneInfo("UTC")
    at = datetime(2030, 1, 1, 2, 30, tzinfo=UTC)
    due = cron.due_ticks
    assert due("30 2 * * *", tz, last=None, now=at + timedelta(seconds=59), catch_up=5) == [at]
    assert due("30 2 * * *", tz, last=None, now=at + timedelta(minutes=2), catch_up=5) == []


def test_keys_sort_as_their_ticks_and_read_back() -> None:
    ticks = [datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=m * 97) for m in range(50)]
    keys = [cron.tick_key("nightly", t) for t in ticks]
    assert keys == sorted(keys)
    assert [cron.tick_of_key("nightly", k) for k in keys] == ticks
    assert all(
        cron.key_prefix("nightly") <= k < cron.prefix_end(cron.key_prefix("nightly")) for k in keys
    )
    assert cron.tick_of_key("night", keys[0]) is None
    assert cron.tick_of_key("nightly", "dogqueue.cron:nightly@yesterday") is None
    assert cron.schedule_name_of_key(keys[0]) == "nightly"
    assert cron.schedule_name_of_key("user-key") is None


def test_aliases_expand_to_their_fields() -> None:
    assert cron.parse_cron("@hourly") == "0 * * * *"
    assert cron.parse_cron("@DAILY") == "0 0 * * *"
    assert cron.parse_cron("  30   2 * *  * ") == "30 2 * * *"
    with pytest.raises(InvalidInput, match="unknown alias"):
        cron.parse_cron("@fortnightly")


def test_without_the_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cronsim", None)
    with pytest.raises(ImportError, match=r"dogqueue\[cron\]"):
        cron.parse_cron("7 7 * * *  ")  # not parsed (and cached) before
    with pytest.raises(ImportError, match=r"dogqueue\[cron\]"):
        cron.latest_ticks("* * * * *", ZoneInfo("UTC"), datetime(2030, 1, 1, tzinfo=UTC), 1)
