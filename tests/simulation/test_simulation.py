"""The fleet simulation: fixed seeds pass on the real Worker, a seed replays byte for
byte (in another process, with other hash seeds, too), escapes fail a run, and a
failing plan shrinks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dogqueue.testing.simulation import Fault, Simulation, format_plan, parse_plan
from dogqueue.testing.simulation.__main__ import main
from dogqueue.testing.simulation.guard import Guard, guarded
from dogqueue.testing.simulation.loop import SimLoop, SimulationEscape
from dogqueue.testing.simulation.run import Outcome
from dogqueue.testing.simulation.shrink import shrink
from dogqueue.worker import Worker

#: The seeds CI runs (each a few seconds of wall time, minutes of fleet time), at
#: half the default producing time.
CI_SEEDS = range(4)
SCALE = 0.5


@pytest.mark.parametrize("seed", CI_SEEDS)
def test_a_fixed_seed_passes_on_the_real_worker(seed: int) -> None:
    outcome = Simulation(seed, scale=SCALE).run()
    assert outcome.failure is None, f"seed {seed}: {outcome.failure}"
    assert outcome.lifecycles > 50
    assert outcome.trace and outcome.log


def test_a_seed_replays_byte_for_byte(tmp_path: Path) -> None:
    first, second = Simulation(3).run(), Simulation(3).run()
    assert first.fired, "seed 3 has faults to replay"
    assert first.trace == second.trace
    assert first.log == second.log
    trace = tmp_path / "trace.txt"
    command = [sys.executable, "-m", "dogqueue.testing.simulation", "--seed", "3"]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([*command, "--trace", str(trace)], check=True, env=env, capture_output=True)
    assert trace.read_text() == "\n".join(first.trace) + "\n"
    assert Path(f"{trace}.log").read_bytes() == first.log + b"\n"


def test_different_seeds_explore_different_interleavings() -> None:
    assert Simulation(1).run().trace != Simulation(2).run().trace


class StartsAThread(Worker[object]):
    def _start_helpers(self) -> list[asyncio.Task[None]]:
        threading.Thread(target=lambda: None).start()
        return super()._start_helpers()


def test_a_real_thread_fails_the_run() -> None:
    outcome = Simulation(0, worker_class=StartsAThread).run()
    assert outcome.failure is not None and outcome.failure.name == "escape"


def test_a_wall_clock_read_by_dogqueue_code_is_recorded_and_fails() -> None:
    import random

    loop = SimLoop(random.Random(0))
    guard = Guard(loop, random.Random(0))
    spy = {"__name__": "dogqueue.somewhere", "time": time}
    with guarded(guard):
        exec("read = time.time()", spy)  # as code in a dogqueue module would
        with pytest.raises(SimulationEscape):
            threading.Thread(target=lambda: None).start()
    loop.close()
    assert spy["read"] == pytest.approx(1_893_456_000.0)  # virtual, not the wall clock
    assert guard.unexcused() == ["time read by dogqueue.somewhere:1"]


def test_a_failing_plan_shrinks_to_the_faults_that_matter() -> None:
    plan = [Fault(float(i), "pause", f"w{i % 3}", 4.0) for i in range(9)]
    culprits = {plan[2], plan[7]}

    def run(candidate: list[Fault]) -> Outcome:
        failure = None
        if culprits <= set(candidate):
            from dogqueue.testing.simulation import Violation

            failure = Violation("one live lease", "two leases")
        return Outcome(0, candidate, failure, [], b"", 0, 0.0, 0)

    shrunk, outcome = shrink(run, run(plan))
    assert shrunk == [plan[2], plan[7]]
    assert outcome.failure is not None


def test_a_plan_round_trips_through_its_text() -> None:
    plan = [Fault(1.5, "kill", "w1", 12.25), Fault(300.0, "lost", "w2"), Fault(0.0, "lacks", "w3")]
    assert parse_plan(format_plan(plan)) == sorted(plan)
    assert Simulation(4, plan=parse_plan(format_plan(plan))).plan == sorted(plan)


def test_the_command_exits_1_with_the_failing_seed_and_its_replay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    worker = "tests.simulation.test_simulation:StartsAThread"
    assert main(["--seeds", "3", "--worker", worker, "--no-shrink"]) == 1
    out = capsys.readouterr().out
    assert "seed 0 FAILED: escape" in out
    assert f"replay: python -m dogqueue.testing.simulation --seed 0 --worker {worker}" in out


def test_a_worker_lives_on_when_its_idle_reads_fail() -> None:
    # Found by the simulation: a StorageError from `next_run_at` ended Worker.run.
    plan = [Fault(float(n), "lost", "w1") for n in range(1, 80, 2)]
    outcome = Simulation(0, plan=plan, scale=SCALE).run()
    assert any("w1 next_run_at" in line and "lost" in line for line in outcome.trace)
    assert outcome.failure is None, outcome.failure


def test_seeds_run_in_processes_report_in_seed_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "3", "--procs", "2", "--scale", "0.25"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["seed 0", "seed 1", "seed 2"]
    assert lines[3].startswith("all passed")


def test_a_seed_failing_in_another_process_is_replayed_and_reported_here(
    capsys: pytest.CaptureFixture[str],
) -> None:
    worker = "properties.broken_workers:CancelListenerDropsOne"
    assert main(["--seeds", "2", "--procs", "2", "--worker", worker, "--no-shrink"]) == 1
    out = capsys.readouterr().out
    assert "seed 0 FAILED: cancel wins" in out
    assert f"replay: python -m dogqueue.testing.simulation --seed 0 --worker {worker}" in out
