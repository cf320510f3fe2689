"""The whole state machine: every rule, and the one invariant that compares the backend
with the model after every step."""

from __future__ import annotations

from hypothesis.stateful import invariant

from dogqueue.testing.factories import BackendFactory
from dogqueue.testing.stateful.invariants import ModelChecks
from dogqueue.testing.stateful.probes import Probes
from dogqueue.testing.stateful.reads import ReadChecks
from dogqueue.testing.stateful.rules import LifecycleRules
from dogqueue.testing.stateful.schedules import Schedules
from dogqueue.testing.stateful.workflows import Workflows


class BackendStateMachine(LifecycleRules, Probes, Workflows, Schedules, ReadChecks, ModelChecks):
    """Subclass with a `factory` (see `backend_state_machine`) to check a backend."""

    @invariant()
    def backend_matches_model(self) -> None:
        self.check_new_events()
        self.adopt_retry_times()
        projected = self.run(self.backend.projected_jobs())
        self.check_jobs(projected)
        log = self.run(self.backend.read_events())
        self.check_rebuild(log, projected)
        self.check_enqueue_positions(log, projected)
        self.check_status_counts(projected)
        self.check_workflows(log, projected)
        self.check_each_tick_has_one_job(projected)
        touched = self.model.take_touched()
        for tenant, job_id in touched:
            self.check_history(tenant, job_id, projected[(tenant, job_id)])
        self.check_reads(log, projected, touched)


def backend_state_machine(
    factory: BackendFactory, name: str = "Backend"
) -> type[BackendStateMachine]:
    """A state machine class that checks the backends `factory` makes; run it with
    `hypothesis.stateful.run_state_machine_as_test` or through its `.TestCase`."""
    attributes: dict[str, object] = {"factory": staticmethod(factory)}
    return type(f"{name}StateMachine", (BackendStateMachine,), attributes)
