"""`dogqueue worker`: run a worker process on a SQLite queue until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from dogqueue.backend import locate
from dogqueue.client.adapter import QueueAdapter
from dogqueue.core.errors import QueueError
from dogqueue.core.message import QueueCtx
from dogqueue.observability.logging import REDACT_ENV, JsonLogFormatter
from dogqueue.schedules import Schedule, check_schedules
from dogqueue.worker import CANCEL_CHECK_SECONDS, DEPLOY_GRACE, DEPLOY_HOLD, Worker

#: Exit code for a target or option the command cannot use.
USAGE_ERROR = 2
#: The module attribute a worker takes its schedules from by default.
SCHEDULES_ATTRIBUTE = "SCHEDULES"


#: The worker's options as (flag, dest, argparse action), to pass them on to children.
_OPTIONS: list[tuple[str, str, str]] = []


def register(subparsers: Any) -> None:
    """Add the `worker` subcommand."""
    _OPTIONS.clear()
    parser = subparsers.add_parser(
        "worker",
        help="run a worker process",
        description="Run jobs from a queue until SIGTERM or SIGINT (graceful: running"
        " jobs get --grace seconds, then their leases are released; a second signal stops at"
        " once). TARGET is module:attribute naming a QueueAdapter, or a factory called with"
        " the backend of --db that returns an adapter or (adapter, context), possibly"
        " awaitable. The current directory is on the import path.",
    )

    def option(*flags: str, **options: Any) -> None:
        action = parser.add_argument(*flags, **options)
        if flags[0].startswith("--"):
            _OPTIONS.append((flags[0], action.dest, options.get("action", "store")))

    option("target", metavar="TARGET", help="module:adapter_or_factory")
    option(
        "--db",
        metavar="PATH|URL",
        help="the queue, for a factory: a SQLite file or a postgresql:// URL (schema=NAME"
        f" picks the schema); default: ${locate.DB_ENV}",
    )
    option(
        "--tenant",
        action="append",
        dest="tenants",
        metavar="TENANT",
        help="serve this tenant (repeatable; default: every tenant with ready jobs)",
    )
    option(
        "--queue",
        action="append",
        dest="queues",
        metavar="QUEUE",
        help="serve this queue (repeatable; '*' serves every queue in use; default: default)",
    )
    option("--concurrency", type=int, default=10, help="jobs at once (10)")
    option("--tenant-concurrency", type=int, help="jobs at once per tenant")
    option("--lease-seconds", type=float, help="lease duration")
    option("--timeout-seconds", type=float, help="default job timeout")
    option("--reaper-seconds", type=float, help="reaper interval")
    option("--grace", type=float, default=30.0, help="shutdown grace seconds (30)")
    option("--log-level", default="INFO", help="logging level (INFO)")
    option("--log-format", choices=("text", "json"), default="text", help="log line format (text)")
    option(
        "--log-no-error-text",
        action="store_true",
        help="keep error text out of every log line: only error types are logged"
        f" (also ${REDACT_ENV}=1); payloads and results are never logged",
    )
    option("--sync-threads", type=int, default=8, help="threads for synchronous jobs (8)")
    option(
        "--cancel-check-seconds",
        type=float,
        default=CANCEL_CHECK_SECONDS,
        help=f"how often running jobs are checked for cancels ({CANCEL_CHECK_SECONDS})",
    )
    option(
        "--deploy-grace",
        type=float,
        default=DEPLOY_GRACE.total_seconds(),
        metavar="SECONDS",
        help="how long a job this worker cannot run (unknown type, undecodable payload) is"
        f" given back for a newer worker before it fails ({DEPLOY_GRACE.total_seconds():g})",
    )
    option(
        "--deploy-hold",
        type=float,
        default=DEPLOY_HOLD.total_seconds(),
        metavar="SECONDS",
        help=f"how long such a job is held before each give-back ({DEPLOY_HOLD.total_seconds():g})",
    )
    option(
        "--schedules",
        metavar="MODULE[:ATTRIBUTE]",
        help="also run these schedules (a list of dogqueue.Schedule, or a callable returning"
        " one; MODULE alone means MODULE:SCHEDULES); default: SCHEDULES of TARGET's module,"
        " if it has one. Any number of workers may run the same schedules: each tick is"
        " enqueued once",
    )
    option(
        "--check",
        action="store_true",
        help="health probe: load TARGET, open the database, print what would be served,"
        " exit 0 (or 1 on a problem) without running jobs",
    )
    option(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (0: any free port;"
        " needs the 'prometheus' extra)",
    )
    option("--metrics-host", default="127.0.0.1", help="address for --metrics-port (127.0.0.1)")
    option(
        "--no-tenant-labels",
        action="store_true",
        help="with --metrics-port: sum tenants into one series",
    )
    option(
        "--workers",
        type=int,
        default=1,
        help="run N worker processes under a supervisor that restarts a crashed one and"
        " passes SIGTERM/SIGINT on (1: this process is the worker); with --metrics-port P,"
        " worker i serves P+i",
    )
    option(
        "--reload",
        action="store_true",
        help="development only: restart the worker when a .py file under the current"
        " directory changes (needs dogqueue[reload]); never in production",
    )
    parser.set_defaults(run=run)


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def load_target(spec: str) -> Any:
    """The object named by `module:attribute`."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"TARGET must be module:attribute, not {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def schedules_option(command: str, spec: str | None) -> list[Schedule] | None:
    """The schedules a `--schedules`-style option names (none given: []), imported with
    the current directory on the import path like `dogqueue worker`; None after printing
    why they cannot be loaded."""
    if spec is None:
        return []
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return load_schedules(spec)
    except (ImportError, AttributeError, ValueError) as error:
        print(f"dogqueue {command}: {error}", file=sys.stderr)
        return None


def load_schedules(spec: str) -> list[Schedule]:
    """The schedules `spec` names: MODULE:ATTRIBUTE (a list, or a callable returning
    one) or MODULE, meaning its SCHEDULES."""
    found = load_target(spec if ":" in spec else f"{spec}:{SCHEDULES_ATTRIBUTE}")
    if callable(found):
        found = found()
    return check_schedules(found)


def target_schedules(target_spec: str, schedules_spec: str | None) -> list[Schedule]:
    """The schedules a worker runs: those of --schedules, else SCHEDULES of the
    target's module if it has one, else none."""
    if schedules_spec is not None:
        return load_schedules(schedules_spec)
    module = importlib.import_module(target_spec.partition(":")[0])
    if not hasattr(module, SCHEDULES_ATTRIBUTE):
        return []
    return load_schedules(f"{module.__name__}:{SCHEDULES_ATTRIBUTE}")


async def build_adapter(target: Any, db: str | None) -> tuple[QueueAdapter[Any], Any]:
    """The adapter (and context) the target gives, opening `db` for a factory."""
    if isinstance(target, QueueAdapter):
        return target, None
    if not callable(target):
        raise ValueError("TARGET must be a QueueAdapter or a callable")
    db = db or os.environ.get(locate.DB_ENV)
    if not db:
        raise ValueError(f"--db (or ${locate.DB_ENV}) is required when TARGET is a factory")
    made = target(locate.open_backend(db))
    if inspect.isawaitable(made):
        made = await made
    adapter, context = made if isinstance(made, tuple) else (made, None)
    if not isinstance(adapter, QueueAdapter):
        raise ValueError(f"the factory returned {type(adapter).__name__}, not a QueueAdapter")
    return adapter, context


async def serve(args: argparse.Namespace) -> int:
    """Build the adapter, run the worker until it is stopped, close the backend."""
    # A stop signal while the adapter is built cancels the build; once the worker exists
    # it asks for a graceful stop (the worker's own handlers replace these when it runs).
    loop = asyncio.get_running_loop()
    serving = asyncio.current_task()
    assert serving is not None
    _on_stop_signals(loop, serving.cancel)
    if _early_stop.is_set():
        return 0
    if args.metrics_port is not None:
        try:
            import dogqueue.observability.prometheus  # noqa: F401 (the extra is needed)
        except ImportError as error:
            print(f"dogqueue worker: --metrics-port: {error}", file=sys.stderr)
            return USAGE_ERROR
    try:
        schedules = target_schedules(args.target, args.schedules)
        adapter, context = await build_adapter(load_target(args.target), args.db)
    except (ImportError, AttributeError, ValueError) as error:
        print(f"dogqueue worker: {error}", file=sys.stderr)
        return USAGE_ERROR
    try:
        queues: list[str] | str = args.queues or ["default"]
        worker: Worker[Any] = Worker(
            adapter,
            tenants=None if not args.tenants else [QueueCtx(t) for t in args.tenants],
            queues="*" if "*" in queues else queues,
            context=context,
            concurrency=args.concurrency,
            tenant_concurrency=args.tenant_concurrency,
            lease_duration=_seconds(args.lease_seconds),
            timeout=_seconds(args.timeout_seconds),
            reaper_interval=_seconds(args.reaper_seconds),
            shutdown_grace=timedelta(seconds=args.grace),
            sync_threads=args.sync_threads,
            cancel_check_interval=_seconds(args.cancel_check_seconds or None),
            deploy_grace=timedelta(seconds=args.deploy_grace),
            deploy_hold=timedelta(seconds=args.deploy_hold),
            schedules=schedules,
            log_error_text=not args.log_no_error_text,
        )
        _on_stop_signals(loop, worker.request_stop)
        if args.check:
            return await _check(worker, adapter, args)
        logging.getLogger("dogqueue.worker").info("worker started: %s", describe(worker, args))
        if args.metrics_port is None:
            await worker.run()
        else:
            await _run_with_metrics(worker, adapter, args)
    except QueueError as error:
        print(f"dogqueue worker: {error}", file=sys.stderr)
        return USAGE_ERROR
    finally:
        await adapter.backend.close()
    logging.getLogger("dogqueue.worker").info("worker stopped")
    return 0


def describe(worker: Worker[Any], args: argparse.Namespace) -> str:
    """What the worker serves: database, queues, tenants, job types, concurrency."""
    database = locate.describe_database(worker.backend)
    queues = "* (every queue in use)" if worker.all_queues else ",".join(worker.queues)
    return (
        f"db={database} queues={queues} tenants={','.join(args.tenants or []) or 'all'}"
        f" job_types={','.join(worker.adapter.job_registry.job_types) or '(none)'}"
        f" concurrency={worker.concurrency} schedules={len(worker.schedules)}"
        f" pid={os.getpid()}"
    )


async def _check(worker: Worker[Any], adapter: QueueAdapter[Any], args: argparse.Namespace) -> int:
    """The health probe: open the database, read it once, print what would be served."""
    if not adapter.job_registry.job_types:
        print("dogqueue worker --check: no job types are registered", file=sys.stderr)
        return 1
    await adapter.backend.open()
    queues = worker.queues if not worker.all_queues else ["default"]
    ready = await adapter.backend.ready_tenants(queues)
    print(f"ok: {describe(worker, args)} ready_tenants={len(ready)}")
    return 0


async def _run_with_metrics(
    worker: Worker[Any], adapter: QueueAdapter[Any], args: argparse.Namespace
) -> None:
    """Run the worker with a /metrics endpoint beside it on the same event loop."""
    from dogqueue.observability.prometheus import MetricsServer

    async with MetricsServer(
        adapter.observability.reader,
        host=args.metrics_host,
        port=args.metrics_port,
        tenant_labels=not args.no_tenant_labels,
        worker_counters=worker.counters,
    ) as server:
        logging.getLogger("dogqueue.worker").info(
            "metrics on http://%s:%d/metrics", args.metrics_host, server.port
        )
        await worker.run()


def _configure_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler()
    if args.log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
        )
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])


#: Set when SIGTERM/SIGINT arrives before the event loop runs: the process then exits
#: cleanly as soon as it can (raising from a signal handler inside the loop could be
#: swallowed by a task and leave the process running).
_early_stop = threading.Event()


def _stop_early(signum: int, frame: object) -> None:
    _early_stop.set()


def _on_stop_signals(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """Call `callback` on SIGTERM or SIGINT (where the platform allows loop handlers)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, callback)


def child_command(args: argparse.Namespace, index: int) -> list[str]:
    """The command line of worker `index` under the supervisor: these options but one."""
    command = [sys.executable, "-m", "dogqueue", "worker", args.target]
    for flag, dest, action in _OPTIONS:
        value = getattr(args, dest)
        if dest in ("workers", "reload") or value is None or value is False:
            continue
        if dest == "metrics_port" and value:
            value += index
        if action == "store_true":
            command.append(flag)
        elif action == "append":
            for item in value:
                command += [flag, str(item)]
        else:
            command += [flag, str(value)]
    return command


def run(args: argparse.Namespace) -> int:
    """Entry point of `dogqueue worker`."""
    if args.workers < 1:
        print("dogqueue worker: --workers must be at least 1", file=sys.stderr)
        return USAGE_ERROR
    if args.reload and not args.check:
        if args.workers > 1:
            print("dogqueue worker: --reload runs one worker; drop --workers", file=sys.stderr)
            return USAGE_ERROR
        from dogqueue.cli.reload import run_reloading

        _configure_logging(args)
        return run_reloading(child_command(args, 0), Path.cwd(), args.grace)
    if args.workers > 1 and not args.check:
        from dogqueue.worker.supervisor import Supervisor

        _configure_logging(args)
        if os.getcwd() not in sys.path:  # children start in this directory
            sys.path.insert(0, os.getcwd())
        return Supervisor(lambda index: child_command(args, index), args.workers).run()
    # Until the event loop's handlers are in place, SIGTERM/SIGINT are a clean exit too.
    _early_stop.clear()
    signal.signal(signal.SIGTERM, _stop_early)
    signal.signal(signal.SIGINT, _stop_early)
    # Like `python -m`: `dogqueue worker myapp.jobs:make` imports from where it is run.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    _configure_logging(args)
    try:
        code = asyncio.run(serve(args))
    except asyncio.CancelledError:  # stopped while the adapter was being built
        return 0
    except QueueError as error:  # e.g. --check on a database that cannot be opened
        print(f"dogqueue worker: {error}", file=sys.stderr)
        return 1
    return code
