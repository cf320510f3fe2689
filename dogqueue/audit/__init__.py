"""Auditing a dogqueue log: the hash chain, verification, time travel, explanations and
archival. Everything here reads the log; nothing here changes an event."""
