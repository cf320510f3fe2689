"""The web dashboard (extra `dogqueue[web]`): `create_app(backend, tokens)` is an ASGI app
to serve with `dogqueue web` or mount in your own Starlette/FastAPI service.

The list reads (`JobBrowser`, `JobFilter`, from `dogqueue.backend.browse`: each backend's
`browser()` returns one) and tokens need no web dependencies;
`create_app` imports them on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dogqueue.backend.browse import JobBrowser, JobFilter, JobPage, ProjectionBrowser, TenantSummary
from dogqueue.web.auth import Principal, TokenStore

if TYPE_CHECKING:
    from dogqueue.web.app import create_app

__all__ = [
    "JobBrowser",
    "JobFilter",
    "JobPage",
    "Principal",
    "ProjectionBrowser",
    "TenantSummary",
    "TokenStore",
    "create_app",
]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from dogqueue.web.app import create_app

        return create_app
    raise AttributeError(name)
