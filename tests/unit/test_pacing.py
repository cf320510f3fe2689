"""The pacing of announcements (NOTIFY of new work): the first of an interval goes out
at once, later ones in the interval are folded into one at its end."""

from __future__ import annotations

import asyncio

from dogqueue.backend.kit.pacing import Pacer


async def test_the_first_goes_now_and_the_rest_of_the_interval_once_at_its_end() -> None:
    fired: list[int] = []
    pacer = Pacer(60.0, lambda: fired.append(1))
    assert pacer.may_send_now()  # nothing sent yet: the caller sends it
    assert not pacer.may_send_now()  # inside the interval: scheduled for its end
    assert not pacer.may_send_now()  # already scheduled: covered
    assert pacer.take_pending()  # closing: the caller sends the one it stood for
    assert not pacer.take_pending()
    assert fired == []


async def test_a_scheduled_announcement_fires_once() -> None:
    done = asyncio.get_running_loop().create_future()
    pacer = Pacer(0.0, lambda: done.set_result(None))
    pacer.later()
    pacer.later()  # covered by the first
    await asyncio.wait_for(done, 10)
    assert not pacer.take_pending()
    assert pacer.may_send_now()  # the interval (0 s) is over
