"""Auditing a dogqueue log: verification, replay, checkpoints, time travel and
explanations. Everything here reads a log through a `dogqueue.log.reader.LogReader`
(any backend's `log_reader()`), never imports a backend, and never changes an event.
(Archival, which writes, is SQLite's own: `dogqueue.backend.sqlite.archive`.)"""
