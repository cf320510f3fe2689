"""What verifying a log found: the problems, the fold, the recomputed chain heads."""

from __future__ import annotations

from dataclasses import dataclass, field

from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey

#: Problems listed before the verifier stops looking for more.
MAX_PROBLEMS = 20


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a log: where (a log position, or None) and what."""

    seq: int | None
    what: str


@dataclass
class Report:
    """The outcome of verifying one log."""

    events: int = 0
    #: Each tenant's recomputed chain head: (seq, hash).
    heads: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    #: The fold of the log, keyed by (tenant_id, job_id).
    jobs: dict[JobKey, JobInfo] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: True when no event has a chain hash (a log older than the chain).
    unchained: bool = False
    #: Jobs left out of the fold because one of their events is wrong (already reported).
    broken_jobs: set[JobKey] = field(default_factory=set)
    #: Committed events still waiting for a position (PostgreSQL's unsealed tail).
    waiting: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        """The first log position found wrong, if any problem has a position."""
        positions = [p.seq for p in self.problems if p.seq is not None]
        return min(positions, default=None)

    def add(self, seq: int | None, what: str) -> None:
        """Record a problem."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(seq, what))

    @property
    def full(self) -> bool:
        """True when enough problems were found to stop looking."""
        return len(self.problems) >= MAX_PROBLEMS
