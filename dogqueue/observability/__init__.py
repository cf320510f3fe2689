"""Observability: metrics folded from the log, Prometheus exposition (extra
`prometheus`), OpenTelemetry spans (extra `otel`) and structured job logs."""

from dogqueue.observability.execution import ExecutionObservation, observe_execution
from dogqueue.observability.metrics import MetricsFold, MetricsSnapshot, metrics_from_events
from dogqueue.observability.reader import MetricsReader, Observability

__all__ = [
    "ExecutionObservation",
    "MetricsFold",
    "MetricsReader",
    "MetricsSnapshot",
    "Observability",
    "metrics_from_events",
    "observe_execution",
]
