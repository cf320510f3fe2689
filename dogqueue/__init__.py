"""dogqueue: an event-sourced, multi-tenant asyncio job queue with verified semantics.

Every state change of a job is an immutable event in an append-only log; a pure state
machine decides and folds them, so any job's state can be replayed and audited.
"""

import logging

from dogqueue.backend.contract import Backend
from dogqueue.client.adapter import QueueAdapter
from dogqueue.client.blocking import BlockingQueue
from dogqueue.client.functions import JobFunction, job
from dogqueue.client.results import JobFailed, JobHandle, ResultTimeout
from dogqueue.client.run import JobRun, current_run
from dogqueue.clock import FakeClock, utc_now
from dogqueue.core.config import QueueConfig
from dogqueue.core.errors import (
    BackendClosed,
    CorruptLog,
    InvalidInput,
    InvalidJobType,
    InvalidTransition,
    JobAlreadyExists,
    JobCanceled,
    JobNotFound,
    LeaseLost,
    QueueError,
    StorageError,
)
from dogqueue.core.events import (
    AnyEvent,
    Canceled,
    Completed,
    Enqueued,
    Event,
    Expired,
    Failed,
    Heartbeat,
    Leased,
    ParentFinished,
    Released,
    Requeued,
)
from dogqueue.core.job import Completion, Failure, JobInfo, LeasedJob, Settlement
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.projection import fold, rebuild
from dogqueue.core.status import JobPriority, JobStatus
from dogqueue.jobs import BaseJob, Job, JobError, JobRegistry, SyncJob
from dogqueue.schedules import Schedule, ScheduleState, enqueue_due
from dogqueue.worker import Worker, WorkerSettings
from dogqueue.worker.threads import JobInterrupted
from dogqueue.workflow import Step

__all__ = [
    "AnyEvent",
    "Backend",
    "BackendClosed",
    "BaseJob",
    "BlockingQueue",
    "Canceled",
    "Completed",
    "Completion",
    "CorruptLog",
    "Enqueued",
    "Event",
    "Expired",
    "Failed",
    "Failure",
    "FakeClock",
    "Heartbeat",
    "InvalidInput",
    "InvalidJobType",
    "InvalidTransition",
    "Job",
    "JobAlreadyExists",
    "JobCanceled",
    "JobError",
    "JobFailed",
    "JobFunction",
    "JobHandle",
    "JobInfo",
    "JobInterrupted",
    "JobMessage",
    "JobNotFound",
    "JobPriority",
    "JobRegistry",
    "JobRun",
    "JobStatus",
    "LeaseLost",
    "Leased",
    "LeasedJob",
    "ParentFinished",
    "QueueAdapter",
    "QueueConfig",
    "QueueCtx",
    "QueueError",
    "Released",
    "Requeued",
    "ResultTimeout",
    "Schedule",
    "ScheduleState",
    "Settlement",
    "Step",
    "StorageError",
    "SyncJob",
    "Worker",
    "WorkerSettings",
    "current_run",
    "enqueue_due",
    "fold",
    "job",
    "rebuild",
    "utc_now",
]

# A library logs only where the application asks it to (no lastResort output).
logging.getLogger("dogqueue").addHandler(logging.NullHandler())
