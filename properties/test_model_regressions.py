"""Sequences the deep profile once found, replayed step by step on both backends."""

from __future__ import annotations

from dogqueue.testing import BackendFactory, backend_state_machine


def test_a_lease_reclaimed_by_dequeue_is_not_ready_in_that_dequeue(
    backend_factory: BackendFactory,
) -> None:
    # The higher-priority job's lease expires; the dequeue that reclaims it schedules its
    # retry in the future, so it must hand out the low-priority job instead.
    state = backend_state_machine(backend_factory)()
    try:
        state.backend_matches_model()
        state.enqueue_many(
            tenant="acme",
            specs=[("default", 0, None, None, 0), ("default", 1, None, None, 1)],
        )
        state.backend_matches_model()
        state.dequeue(queues=("default",), seconds=None, tenant="acme")
        state.backend_matches_model()
        state.advance_clock(seconds=31)
        state.dequeue(queues=("default",), seconds=None, tenant="acme")
        state.backend_matches_model()
        low, high = sorted(state.model.jobs.values(), key=lambda job: job.priority)
        assert (low.status, high.status) == ("leased", "enqueued")
    finally:
        state.teardown()
