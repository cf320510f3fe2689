"""Opening a queue from one string: a SQLite file path, a PostgreSQL URL or a Redis URL.

`open_backend(db)` gives the backend to run a queue on; `open_log(db)` gives its log,
read-only, for the audit tools. Both do no I/O until first used (a SQLite log must exist).
A `postgresql://` or `postgres://` URL may carry `schema=NAME` among its query
parameters: it selects the queue's schema and is not passed to the server. A
`redis://`, `rediss://` or `unix://` URL may carry `prefix=NAME` (the queue's key
prefix), `durability=persistent|always|none` and `cluster=yes`, also not passed on.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dogqueue.backend.contract import Backend
from dogqueue.core.errors import InvalidInput, StorageError
from dogqueue.log.chain import read_audit_key
from dogqueue.log.reader import LogReader

if TYPE_CHECKING:
    from dogqueue.backend.sqlite.backend import SqliteBackend

#: The environment variable the command line reads when `--db` is not given.
DB_ENV = "DOGQUEUE_DB"
#: URL schemes that name a PostgreSQL database.
POSTGRES_SCHEMES = ("postgresql", "postgres")
#: URL schemes that name a Redis server.
REDIS_SCHEMES = ("redis", "rediss", "unix")


def is_postgres_url(db: str) -> bool:
    """True when `db` is a PostgreSQL URL rather than a file path."""
    return urlsplit(db).scheme.lower() in POSTGRES_SCHEMES


def is_redis_url(db: str) -> bool:
    """True when `db` is a Redis URL rather than a file path."""
    return urlsplit(db).scheme.lower() in REDIS_SCHEMES


def is_server_url(db: str) -> bool:
    """True when `db` names a database server (PostgreSQL or Redis), not a file."""
    return is_postgres_url(db) or is_redis_url(db)


def _redis_module(url: str) -> Any:
    try:
        # Imported by name: the Redis backend and its driver are optional.
        return importlib.import_module("dogqueue.backend.redis")
    except ImportError as error:
        raise StorageError(
            f"cannot open {urlsplit(url).scheme}:// URLs: the Redis backend is not"
            f" available ({error}); install dogqueue[redis]"
        ) from error


def _redis_options(url: str) -> tuple[Any, str, dict[str, Any]]:
    """The Redis backend's module, the URL for the driver, and the queue's options."""
    module = _redis_module(url)
    from dogqueue.backend.redis.connect import split_options

    plain, options = split_options(url)
    kwargs: dict[str, Any] = {}
    if "prefix" in options:
        kwargs["prefix"] = options["prefix"]
    if "durability" in options:
        kwargs["durability"] = options["durability"]
    if "cluster" in options:
        kwargs["cluster"] = options["cluster"].lower() in ("1", "yes", "true", "on")
    return module, plain, kwargs


def redis_prefix(url: str) -> str:
    """The key prefix of the queue a Redis URL names (its prefix=NAME, else the default)."""
    prefix: str = _redis_options(url)[2].get("prefix", "dogqueue")
    return prefix


def redis_queue(url: str) -> tuple[str, str, bool]:
    """The URL for the driver, the queue's key prefix and whether it is a cluster."""
    _, plain, options = _redis_options(url)
    return plain, options.get("prefix", "dogqueue"), bool(options.get("cluster", False))


def split_schema(url: str) -> tuple[str, str | None]:
    """The URL without its `schema=NAME` query parameter, and that name (if any)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    if len(schemas) > 1:
        raise InvalidInput("db", "the URL names more than one schema")
    if schemas and not schemas[0]:
        raise InvalidInput("db", "the URL's schema= parameter is empty")
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), (schemas[0] if schemas else None)


def _check(db: object) -> str:
    if not isinstance(db, (str, os.PathLike)):
        raise InvalidInput("db", "must be a SQLite file path, a postgresql:// or a redis:// URL")
    text = os.fspath(db)
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("db", "must be a SQLite file path, a postgresql:// or a redis:// URL")
    return text


def _postgres_module(url: str) -> Any:
    try:
        # Imported by name: the PostgreSQL backend and its driver are optional.
        return importlib.import_module("dogqueue.backend.postgres")
    except ImportError as error:
        raise StorageError(
            f"cannot open {urlsplit(url).scheme}:// URLs: the PostgreSQL backend is not"
            f" available ({error}); install dogqueue[postgres]"
        ) from error


def _postgres(url: str, **kwargs: Any) -> Backend:
    postgres = _postgres_module(url)
    dsn, schema = split_schema(url)
    if schema is not None:
        kwargs["schema"] = schema
    backend: Backend = postgres.PostgresBackend(dsn, **kwargs)
    return backend


def open_backend(db: str | os.PathLike[str], **kwargs: Any) -> Backend:
    """The backend for `db` (a SQLite path, created if missing, or a PostgreSQL URL),
    unopened; `kwargs` go to its constructor (config, clock, ...). Its audit key is
    read from the file `$DOGQUEUE_AUDIT_KEY_FILE` names, unless `kwargs` give one."""
    text = _check(db)
    if "audit_key" not in kwargs and (key := read_audit_key()) is not None:
        kwargs["audit_key"] = key
    if is_postgres_url(text):
        return _postgres(text, **kwargs)
    if is_redis_url(text):
        module, plain, options = _redis_options(text)
        backend: Backend = module.RedisBackend(plain, **{**options, **kwargs})
        return backend
    return _sqlite(text, **kwargs)


def _sqlite(path: str, **kwargs: Any) -> SqliteBackend:
    from dogqueue.backend.sqlite import SqliteBackend

    return SqliteBackend(path, **kwargs)


#: The parts of a connection string that name where a database is (never credentials).
_PLACE_KEYS = ("host", "port", "dbname")


def describe_database(backend: object) -> str:
    """Where `backend` keeps its queue, for a log line: a SQLite file's path, or a
    server's host, port, database and schema; never a user name or password."""
    path = getattr(backend, "path", None)
    if path is not None:
        return str(path)
    dsn = getattr(backend, "dsn", None)
    if isinstance(dsn, str):
        place = _dsn_place(dsn)
        schema = getattr(backend, "schema", None)
        return f"postgresql://{place}" + (f"?schema={schema}" if schema else "")
    return type(backend).__name__


def _dsn_place(dsn: str) -> str:
    """host:port/database of a PostgreSQL URL or key=value connection string."""
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
            found = {"host": parts.hostname or "", "port": str(parts.port or "")}
        except ValueError:
            return "(unreadable URL)"
        found["dbname"] = parts.path.lstrip("/")
        for key, value in parse_qsl(parts.query):
            if key in _PLACE_KEYS and not found.get(key):
                found[key] = value
    else:
        found = dict(item.split("=", 1) for item in dsn.split() if "=" in item)
    host, port, database = (found.get(key, "") for key in _PLACE_KEYS)
    return f"{host or 'localhost'}{f':{port}' if port else ''}/{database}"


def open_log(db: str | os.PathLike[str]) -> LogReader:
    """The log of `db`, read-only (never migrated or written). A SQLite file must exist.
    Close it with `await log.close()`."""
    text = _check(db)
    if is_postgres_url(text):
        postgres = _postgres_module(text)
        dsn, schema = split_schema(text)
        reader: LogReader = postgres.PostgresLog(dsn=dsn, schema=schema or "dogqueue")
        return reader
    if is_redis_url(text):
        module, plain, options = _redis_options(text)
        redis_log: LogReader = module.RedisLog(
            url=plain,
            prefix=options.get("prefix", "dogqueue"),
            cluster=options.get("cluster", False),
        )
        return redis_log
    from dogqueue.backend.sqlite.log import SqliteLogReader

    return SqliteLogReader(text)
