"""The fleet simulation as a soak: real loop, real time, a real SQLite file, the same
faults and invariants (not deterministic, so nothing here compares traces)."""

from __future__ import annotations

import asyncio

import pytest

from dogqueue.testing.factories import SqliteFactory
from dogqueue.testing.simulation import Fault, Simulation, Violation, format_plan
from dogqueue.testing.simulation.__main__ import main
from dogqueue.testing.simulation.soak import SoakLoop
from properties.broken import WrappingFactory, mutant_classes

#: A few seconds of real time: the producer's share of a seed's run.
SCALE = 0.1
#: Every kind of timed and storage fault, all early (the run ends a second after them).
PLAN = [
    Fault(0.0, "lacks", "w2"),
    Fault(1.0, "pause", "w1", 0.5),
    Fault(1.1, "skew", "w1", 2.0),
    Fault(1.2, "cancels", "ops", 3),
    Fault(1.5, "kill", "w2", 1.0),
    Fault(5.0, "storage", "w1"),
    Fault(9.0, "lost", "w1"),
]


def test_a_short_soak_on_sqlite_keeps_every_invariant() -> None:
    outcome = Simulation(0, soak=True, scale=SCALE, plan=PLAN).run()
    assert outcome.failure is None, outcome.failure
    assert {fault.kind for fault in outcome.fired} == {fault.kind for fault in PLAN}
    assert outcome.lifecycles > 0
    assert b'"type":"leased"' in outcome.log


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_soak_checks_the_invariants() -> None:
    broken = WrappingFactory(SqliteFactory(), mutant_classes()["EnqueueTicksRepeatsATick"])
    outcome = Simulation(0, factory=broken, soak=True, scale=SCALE, plan=PLAN).run()
    assert outcome.failure is not None and outcome.failure.name == "cron tick once"


def test_the_command_soaks_a_seed(capsys: pytest.CaptureFixture[str]) -> None:
    command = ["--soak", "--seed", "0", "--scale", str(SCALE), "--faults", format_plan(PLAN)]
    assert main(command) == 0
    assert "seed 0: ok" in capsys.readouterr().out


def test_a_violation_found_outside_the_run_leaves_the_loop_usable() -> None:
    # Found after the run (a guard's report, a stall), it must not stop the loop that
    # then reads the log: the read would end before its result.
    sim = Simulation(0, soak=True, plan=[])
    loop = sim.loop = SoakLoop()
    try:
        sim.fail(Violation("late", "found after the run"))
        assert loop.run_until_complete(asyncio.sleep(0.001, "read")) == "read"
    finally:
        loop.close()
    assert sim.failure is not None and sim.failure.name == "late"
