"""The worker runtime behind `dogqueue.Worker`, cut by responsibility: the lease loop
(`leasing`, `fairness`, `queues`), running and acknowledging jobs (`execution`,
`running`, `settler`, `threads`), heartbeats and cancels (`heartbeats`), the reaper and
schedules (`maintenance`), the loop watchdog (`watchdog`), the deploy hold (`deploy`),
the settings (`settings`) and the multi-process supervisor (`supervisor`)."""

from dogqueue.worker.running import StopReason
from dogqueue.worker.settings import (
    CANCEL_CHECK_SECONDS,
    DEPLOY_GRACE,
    DEPLOY_HOLD,
    WorkerSettings,
)
from dogqueue.worker.worker import Worker

__all__ = [
    "CANCEL_CHECK_SECONDS",
    "DEPLOY_GRACE",
    "DEPLOY_HOLD",
    "StopReason",
    "Worker",
    "WorkerSettings",
]
