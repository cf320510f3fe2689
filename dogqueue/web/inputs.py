"""What a dashboard request may carry, parsed into typed values before a handler uses
it: a body capped before it is read, query parameters by a declared table, and path
segments decoded from the URL as sent (so a `/` inside a tenant name routes).

Bad input is an `InvalidInput` naming the parameter (the app answers 400) or a
`BodyTooLarge` (413); nothing here answers 500."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from dogqueue.backend.browse import JobFilter
from dogqueue.core import validation as check
from dogqueue.core.errors import InvalidInput
from dogqueue.core.status import JobStatus

#: The largest form body read (bytes); a larger one is refused unread.
MAX_FORM_BYTES = 65_536
#: Fields a form may hold.
MAX_FORM_FIELDS = 64
#: The largest enqueue position a cursor may name (SQLite and PostgreSQL bigint).
MAX_CURSOR = 2**63 - 1
_CONTENT_LENGTH = re.compile(r"[0-9]{1,20}")
#: The scope key set when the routed path keeps the request's percent-encoding.
ENCODED_PATH = "dogqueue.encoded_path"


class BodyTooLarge(Exception):
    """The request's body is larger than the dashboard reads."""


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """The urlencoded form of `request`: its Content-Length checked and its body
    streamed with a cap of `limit` bytes (BodyTooLarge beyond it, never buffered)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not _CONTENT_LENGTH.fullmatch(declared):
            raise InvalidInput("content-length", "must be a number of bytes")
        if int(declared) > limit:
            raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    try:
        fields = parse_qs(
            body.decode("utf-8", errors="replace"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError as error:
        raise InvalidInput("form", f"must hold at most {MAX_FORM_FIELDS} fields") from error
    return {name: values[0] for name, values in fields.items()}


# -- query parameters ----------------------------------------------------------------


def _statuses(name: str, text: str) -> frozenset[JobStatus]:
    known = {status.value: status for status in JobStatus}
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    for part in chosen:
        if part not in known:
            raise InvalidInput(name, f"must be statuses among {', '.join(known)}")
    return frozenset(known[part] for part in chosen)


def _name(name: str, text: str) -> str | None:
    """A name, search prefix or notice: as the queue checks names (at most 256
    characters, no control characters or lone surrogates)."""
    text = text.strip()
    return check.check_name(name, text) if text else None


def _moment(name: str, text: str) -> datetime | None:
    """An ISO 8601 time, in UTC (UTC if no zone is given)."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except ValueError as error:
        raise InvalidInput(name, "must be an ISO 8601 time") from error
    except OverflowError as error:
        raise InvalidInput(name, "is out of the range of times") from error


def _cursor(name: str, text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_CURSOR:
        raise InvalidInput(name, "is not a cursor this dashboard made")
    return str(int(text))


#: Every query (and filter form) parameter the dashboard reads.
QUERY_PARAMETERS = ("status", "type", "queue", "after", "before", "q", "cursor", "done")


@dataclass(frozen=True)
class ListQuery:
    """A job list's parameters: its filters, where the page starts, and a notice."""

    filters: JobFilter
    cursor: str | None = None
    done: str | None = None


def parse_list_query(params: Mapping[str, str]) -> ListQuery:
    """The typed parameters of a job list (InvalidInput naming the first bad one);
    parameters it does not know are ignored."""

    def given(name: str) -> str:
        assert name in QUERY_PARAMETERS, name  # the hostile-input test sends each one
        return params.get(name, "")

    filters = JobFilter(
        statuses=_statuses("status", given("status")),
        job_type=_name("type", given("type")),
        queue=_name("queue", given("queue")),
        created_after=_moment("after", given("after")),
        created_before=_moment("before", given("before")),
        search=_name("q", given("q")),
    )
    return ListQuery(filters, _cursor("cursor", given("cursor")), _name("done", given("done")))


# -- path segments -------------------------------------------------------------------


def path_segment(request: Request, name: str) -> str:
    """The path parameter `name`, percent-decoded once (InvalidInput if it does not
    decode to UTF-8)."""
    value = str(request.path_params[name])
    if not request.scope.get(ENCODED_PATH):
        return value
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError as error:
        raise InvalidInput(name, "must be UTF-8") from error


class EncodedPathRouting:
    """ASGI middleware: route on the path as the client encoded it, so `%2F` inside a
    segment (a tenant named `a/b`) stays inside that segment; `path_segment` decodes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and isinstance(raw, bytes):
            encoded = raw.split(b"?", 1)[0].decode("latin-1")
            root: str = scope.get("root_path", "")
            # The mount prefix, if the raw path still holds it, has as many segments.
            prefix = "/".join(encoded.split("/")[: root.count("/") + 1])
            route = encoded[len(prefix) :] if root and unquote(prefix) == root else encoded
            if root + unquote(route) == scope["path"]:  # the same path, only encoded
                scope = {**scope, "path": root + route, ENCODED_PATH: True}
        await self.app(scope, receive, send)
