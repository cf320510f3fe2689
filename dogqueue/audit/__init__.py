"""Auditing a dogqueue log: verification, replay, checkpoints, time travel and
explanations. Everything here reads a log through a `dogqueue.log.reader.LogReader`
(any backend's `log_reader()`), never imports a backend, and never changes an event.
(Archival, which writes, is a tool of the logs that have it: `dogqueue.backend.sqlite.archive`
and `dogqueue.backend.redis_archive`.)"""
