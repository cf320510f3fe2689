"""`dogqueue web`: serve the dashboard (needs the `dogqueue[web]` extra)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from dogqueue.cli._common import EXIT_ERROR, EXIT_OK, guarded
from dogqueue.cli.act import add_db_default, open_db
from dogqueue.cli.worker import schedules_option

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
    from dogqueue.web.auth import Principal, TokenStore

    if args.tokens:
        tokens = TokenStore.from_file(args.tokens)
    elif os.environ.get(TOKEN_ENV):
        tokens = TokenStore([(os.environ[TOKEN_ENV], Principal("admin"))])
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
            app = create_app(backend, tokens, schedules=schedules)
            config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info")
            await uvicorn.Server(config).serve()

    asyncio.run(serve())
    return EXIT_OK
