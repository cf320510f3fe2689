"""simulation_speed.py's measurement still runs the fleet simulation."""

from __future__ import annotations

from bench import simulation_speed


def test_the_simulation_speed_measure_runs() -> None:
    speed = simulation_speed.measure(range(1), scale=0.25)
    assert speed.lifecycles > 0 and speed.wall > 0 and speed.cpu > 0
    assert "lifecycles/s wall" in speed.line()


def test_the_measure_runs_seeds_in_processes() -> None:
    speed = simulation_speed.measure(range(2), scale=0.25, procs=2)
    assert speed.lifecycles > 0 and speed.cpu > 0
