"""Workflows: jobs that run after other jobs. A `Step` is one job with its queueing
options; `QueueAdapter.enqueue_chain`, `enqueue_group` and `enqueue_chord` enqueue
steps with dependencies between them, all or none, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import msgspec

from dogqueue.core.errors import InvalidInput
from dogqueue.core.job import JobInfo
from dogqueue.core.status import JobPriority, JobStatus
from dogqueue.jobs import BaseJob

R = TypeVar("R")

#: What a job does when one of its parents fails or is canceled.
ParentFailurePolicy = Literal["cancel", "run"]


@dataclass(frozen=True)
class Step(Generic[R]):
    """A job to enqueue as part of a workflow, with the options `enqueue` takes.
    `on_parent_failure="run"` lets it run once its parents have ended even if one of
    them failed or was canceled (by default it is canceled with them)."""

    job: BaseJob[Any, R]
    queue: str | None = None
    run_at: datetime | None = None
    idempotency_key: str | None = None
    priority: JobPriority | None = None
    max_retries: int | None = None
    on_parent_failure: ParentFailurePolicy = "cancel"


def as_step(item: BaseJob[Any, R] | Step[R]) -> Step[R]:
    """`item` as a Step (a bare job gets the default options)."""
    if isinstance(item, Step):
        return item
    if isinstance(item, BaseJob):
        return Step(item)
    raise InvalidInput("jobs", f"must hold jobs or Steps, not {type(item).__name__}")


def check_parent_ids(after: object) -> tuple[str, ...]:
    """`after` as a tuple of job ids (any sequence of str is accepted)."""
    if isinstance(after, (str, bytes)) or not isinstance(after, (list, tuple)):
        raise InvalidInput("after", "must be a list of job ids")
    for parent in after:
        if not isinstance(parent, str):
            raise InvalidInput("after", f"must hold job ids (str), not {type(parent).__name__}")
    return tuple(str(parent) for parent in after)


def parent_results(parents: list[JobInfo], result_type: type[R]) -> dict[str, R | None]:
    """The decoded results of the COMPLETED parents, by job id, in `after` order (a
    parent that failed or was canceled is left out)."""
    results: dict[str, R | None] = {}
    for parent in parents:
        if parent.status is JobStatus.COMPLETED:
            results[parent.job_id] = (
                None
                if parent.result is None
                else msgspec.json.decode(parent.result, type=result_type)
            )
    return results
