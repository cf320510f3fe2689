"""The backend the simulation's hosts share outlives any one of them: work it runs for
all hosts (a group commit's batch) does not stop when the host whose call started it is
killed, as a database server does not stop when one client dies."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from dogqueue import QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.testing.conformance.helpers import message
from dogqueue.testing.simulation import Simulation
from dogqueue.testing.simulation.loop import Host, on_host
from dogqueue.testing.simulation.run import CONFIG
from dogqueue.testing.simulation.soak import SoakLoop
from dogqueue.testing.simulation.view import HostView

#: How many loop turns into a call its host dies: from before the call reaches the
#: backend to after its unit of work is committed.
TURNS = 12
#: Far longer than a call takes: only a call that never returns runs into it.
HANG_SECONDS = 20.0


def test_a_host_killed_mid_call_never_stalls_the_other_hosts(tmp_path: Path) -> None:
    sim = Simulation(0, soak=True, plan=[])
    loop = sim.loop = SoakLoop()
    backend = sim.backend = SqliteBackend(tmp_path / "queue.db", clock=sim.db_clock, config=CONFIG)
    tenant = QueueCtx("t0")
    doomed_hosts: list[Host] = []

    async def kill_after(turns: int) -> int:
        doomed, survivor = (
            HostView(backend, Host(f"a{turns}"), sim),
            HostView(backend, Host("b"), sim),
        )
        loop.create_task(doomed.enqueue(tenant, message()), context=on_host(doomed.host))
        for _ in range(turns):
            await asyncio.sleep(0)
        doomed.host.dead = True
        doomed_hosts.append(doomed.host)
        enqueued = loop.create_task(
            survivor.enqueue(tenant, message()), context=on_host(survivor.host)
        )
        await asyncio.wait_for(enqueued, HANG_SECONDS)
        return len(await backend.read_events())

    async def scenario() -> list[int]:
        await backend.open()
        try:
            return [await kill_after(turns) for turns in range(TURNS)]
        finally:
            await backend.close()

    try:
        sizes = loop.run_until_complete(scenario())
    finally:
        loop.revive(doomed_hosts)  # to unwind the calls the dead hosts left midway
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.close()
    # Every survivor's job was appended (and the doomed host's, whenever its call got
    # far enough before it died).
    assert sizes[0] > 0 and all(a < b for a, b in itertools.pairwise(sizes))
