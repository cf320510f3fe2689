"""The PostgreSQL backend's SQL, loaded once from the .sql files beside this module."""

from __future__ import annotations

from dogqueue.backend.kit.sqlfiles import load_migrations, load_queries

Q = load_queries(__package__)
MIGRATIONS = load_migrations(__package__)
#: The schema version this code writes.
SCHEMA_VERSION = MIGRATIONS[-1][0]
