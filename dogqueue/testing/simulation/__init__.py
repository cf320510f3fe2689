"""Deterministic simulation of a whole fleet: real `Worker`s, producers, operators,
schedules and workflows on one seeded, virtual-time event loop, with faults drawn from
the seed and the fleet's invariants checked as the log grows.

    python -m dogqueue.testing.simulation --seeds 200
    python -m dogqueue.testing.simulation --seed 17 --trace trace.txt
"""

from dogqueue.testing.simulation.faults import Fault, format_plan, parse_plan
from dogqueue.testing.simulation.invariants import Violation
from dogqueue.testing.simulation.run import Outcome, Simulation

__all__ = ["Fault", "Outcome", "Simulation", "Violation", "format_plan", "parse_plan"]
