"""`dogqueue web`: serve the dashboard (needs the `dogqueue[web]` extra)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import timedelta

from dogqueue.cli._common import EXIT_ERROR, EXIT_OK, guarded
from dogqueue.cli.act import add_db_default, open_db
from dogqueue.cli.worker import schedules_option

# Imported without the web extra: auth needs nothing beyond the standard library.
from dogqueue.web.auth import DEFAULT_IDLE, DEFAULT_LIFETIME, LOGIN_CODE_VALID, TokenStore

#: An admin token when no token file is given.
TOKEN_ENV = "DOGQUEUE_WEB_TOKEN"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add web."""
    parser = subparsers.add_parser(
        "web",
        help="serve the web dashboard",
        description="Serve the dashboard: tenants, jobs, timelines, dead letters, and"
        " cancel/retry/requeue. Access needs a token: lines `admin TOKEN [NAME]` or"
        f" `tenant:TENANT TOKEN [NAME]` in --tokens FILE, or an admin token in ${TOKEN_ENV}.",
    )
    add_db_default(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind (8080)")
    parser.add_argument("--tokens", metavar="FILE", help="the access tokens")
    parser.add_argument(
        "--session-idle",
        type=float,
        default=DEFAULT_IDLE.total_seconds() / 60,
        metavar="MINUTES",
        help="a browser session unused this long ends (default %(default)g)",
    )
    parser.add_argument(
        "--session-lifetime",
        type=float,
        default=DEFAULT_LIFETIME.total_seconds() / 3600,
        metavar="HOURS",
        help="a browser session ends this long after login (default %(default)g)",
    )
    parser.add_argument(
        "--schedules",
        metavar="MODULE[:ATTRIBUTE]",
        help="the schedules to show (the list your workers run, as for `dogqueue schedules`)",
    )
    parser.set_defaults(run=guarded(_run))


def _run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from dogqueue.web.app import create_app
    except ImportError as error:
        print(
            f"dogqueue web needs the web extra: pip install 'dogqueue[web]' ({error})",
            file=sys.stderr,
        )
        return EXIT_ERROR
    from dogqueue.web.auth import Principal

    idle = timedelta(minutes=args.session_idle)
    lifetime = timedelta(hours=args.session_lifetime)
    if args.tokens:
        tokens = TokenStore.from_file(args.tokens, idle=idle, lifetime=lifetime)
    elif os.environ.get(TOKEN_ENV):
        admin = [(os.environ[TOKEN_ENV], Principal("admin"))]
        tokens = TokenStore(admin, idle=idle, lifetime=lifetime)
    else:
        print(
            f"dogqueue web: give access tokens with --tokens FILE or ${TOKEN_ENV}", file=sys.stderr
        )
        return EXIT_ERROR

    schedules = schedules_option("web", args.schedules)
    if schedules is None:
        return EXIT_ERROR

    async def serve() -> None:
        async with open_db(args.db) as backend:
            _print_login_link(tokens, args.host, args.port)
            app = create_app(backend, tokens, schedules=schedules)
            config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info")
            await uvicorn.Server(config).serve()

    asyncio.run(serve())
    return EXIT_OK


def _print_login_link(tokens: TokenStore, host: str, port: int) -> None:
    """Print a one-time login link for the first admin, once: the code rides in the
    fragment, which browsers never send, so no server log sees it."""
    admin = tokens.first_admin
    if admin is None:
        return
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    host = f"[{host}]" if ":" in host else host
    code = tokens.issue_login_code(admin)
    print(
        f"dogqueue web: log in as {admin.name} at http://{host}:{port}/login#code={code}"
        f" (works once, within {LOGIN_CODE_VALID.total_seconds() / 60:g} minutes)",
        flush=True,
    )
