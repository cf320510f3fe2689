"""Faults: drawn from the seed as a plan, written as text, replayed exactly.

A plan is a list of `Fault`s. Timed faults (kill, pause, skew, cancels) happen at a
virtual time; storage faults (`storage`: the call fails before it commits, `lost`: it
commits and the reply is lost) hit one host's n-th backend call; `lacks` deploys a host
without one job type. Every fault ends before the run's quiet period, so liveness can be
asked of what is left.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: What each kind's `arg` means.
KINDS = {
    "kill": "restart after seconds",
    "pause": "seconds paused",
    "skew": "clock rate",
    "cancels": "jobs canceled",
    "storage": "-",
    "lost": "-",
    "lacks": "-",
}
_RATES = (0.5, 0.8, 1.25, 2.0)


@dataclass(frozen=True, order=True)
class Fault:
    """One fault: `kind` on `host` at `at` (seconds, or the host's n-th call)."""

    at: float
    kind: str
    host: str
    arg: float = 0.0

    def __str__(self) -> str:
        return f"{self.kind}:{self.host}@{self.at:g}/{self.arg:g}"

    @classmethod
    def parse(cls, text: str) -> Fault:
        """The fault `str(fault)` wrote."""
        kind, _, rest = text.strip().partition(":")
        host, _, rest = rest.partition("@")
        at, _, arg = rest.partition("/")
        if kind not in KINDS or not host or not at:
            raise ValueError(f"not a fault: {text!r} (kind:host@at/arg)")
        return cls(at=float(at), kind=kind, host=host, arg=float(arg or 0))


def format_plan(plan: list[Fault]) -> str:
    """The plan as one argument for `--faults`."""
    return ";".join(str(fault) for fault in plan)


def parse_plan(text: str) -> list[Fault]:
    """The plan `format_plan` wrote ("" is no fault)."""
    return sorted(Fault.parse(part) for part in text.split(";") if part.strip())


def draw_plan(rng: random.Random, workers: list[str], window: float) -> list[Fault]:
    """A random plan over `workers` whose faults all fall before `window` seconds."""
    plan: list[Fault] = []
    for _ in range(rng.randrange(0, 14)):
        kind = rng.choice(("kill", "pause", "skew", "cancels", "storage", "lost", "storage"))
        host = rng.choice(workers)
        at = round(rng.uniform(1.0, window), 3)
        if kind == "kill":
            plan.append(Fault(at, kind, host, round(rng.uniform(1.0, 30.0), 3)))
        elif kind == "pause":
            plan.append(Fault(at, kind, host, rng.choice((0.5, 4.0, 11.0, 13.0, 25.0))))
        elif kind == "skew":
            plan.append(Fault(at, kind, host, rng.choice(_RATES)))
        elif kind == "cancels":
            plan.append(Fault(at, kind, rng.choice([*workers, "ops"]), rng.randrange(2, 8)))
        else:
            plan.append(Fault(float(rng.randrange(5, 1500)), kind, host))
    if len(workers) > 1 and rng.random() < 0.3:
        plan.append(Fault(0.0, "lacks", rng.choice(workers)))
    return sorted(plan)
