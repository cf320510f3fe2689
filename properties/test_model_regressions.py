"""Sequences the deep profile once found, replayed step by step on every backend."""

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


def test_a_parent_failed_with_an_empty_error_gives_no_reason() -> None:
    """Found by the deep profile: a dependent canceled because its parent failed with the
    error "" records "parent ID failed", with no ": " after it."""
    from datetime import UTC, datetime, timedelta

    from dogqueue.testing.model import CANCELED, QueueModel

    model = QueueModel(base_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=8))
    now = datetime(2030, 1, 1, tzinfo=UTC)
    for job_id in ("parent", "child"):
        model.enqueue("acme", job_id, queue="q", priority=1, max_retries=0, key=None, run_at=now)
    parent, child = model.job("acme", "parent"), model.job("acme", "child")
    assert parent is not None and child is not None
    model.wait_for(child, ("parent",), run_anyway=False)
    model.lease(parent, 1, now + timedelta(seconds=30))
    model.fail(parent, "", retry=False, now=now)
    assert (child.status, child.last_error) == (CANCELED, "parent parent failed")
