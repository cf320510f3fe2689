"""Every route of the dashboard, enumerated from the app (a new route is covered by
itself), gets every hostile value of the shared table in each path parameter, each
query parameter the dashboard reads and each form field, on every backend: no answer
is a 5xx, and the log gains no event."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
from starlette.routing import Route

from dogqueue.backend.base import EngineBackend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.web import TokenStore, create_app
from dogqueue.web.inputs import MAX_FORM_BYTES, MAX_FORM_FIELDS, QUERY_PARAMETERS
from tests.hostile_values import HOSTILE_VALUES
from tests.web.workload import ADMIN_TOKEN, TOKENS_TEXT

#: Form fields beyond the query parameters, and one the dashboard does not know.
FORM_ONLY = ("csrf", "token", "unknown")


@dataclass(frozen=True)
class Attempt:
    method: str
    path: str
    body: str | None = None


async def _completed_job(backend: EngineBackend) -> str:
    """A tenant whose only job is completed: no action may change it."""
    ctx = QueueCtx("acme")
    job_id = await backend.enqueue(ctx, JobMessage(job_type="email", payload_bytes=b"{}"))
    lease = await backend.dequeue(ctx, ["default"])
    assert lease is not None
    await backend.ack_complete(ctx, lease, b'"ok"')
    return job_id


def _path(route: Route, values: dict[str, str]) -> str:
    path = route.path
    for name in route.param_convertors:
        path = path.replace(f"{{{name}}}", values[name])
    return path


def attempts(routes: list[Route], valid: dict[str, str]) -> Iterator[Attempt]:
    """Each route and method with each hostile value in each place it could go."""
    for route, value in itertools.product(routes, HOSTILE_VALUES.values()):
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):  # HEAD runs GET's
            for name in route.param_convertors:
                yield Attempt(method, _path(route, {**valid, name: value}))
            path = _path(route, valid)
            for name in (*QUERY_PARAMETERS, *FORM_ONLY):
                yield Attempt(method, f"{path}?{name}={value}")
                if method == "POST":
                    yield Attempt(method, path, f"{name}={value}")


async def test_no_hostile_value_gets_a_5xx_or_writes(backend: EngineBackend) -> None:
    job_id = await _completed_job(backend)
    before = await backend.read_events()
    app = create_app(backend, TokenStore.parse(TOKENS_TEXT))
    routes = [route for route in app.routes if isinstance(route, Route)]
    assert len(routes) >= 13
    transport = httpx.ASGITransport(app=app)
    headers = {
        "Authorization": f"Bearer {ADMIN_TOKEN}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    failures = []
    sent = 0
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1:8080", headers=headers
    ) as http:
        # An action no route has, so that no valid queue name pauses anything.
        valid = {"tenant": "acme", "job_id": job_id, "queue": "default", "name": "nightly"}
        valid["action"] = "inspect"
        for attempt in attempts(routes, valid):
            answer = await http.request(attempt.method, attempt.path, content=attempt.body)
            sent += 1
            if answer.status_code >= 500:
                failures.append((attempt, answer.status_code))
    assert sent > 4_000
    assert failures == []
    assert await backend.read_events() == before


async def test_forms_past_their_caps_are_refused_unread() -> None:
    """Too many fields is 400, a body past 64 KiB is 413 (declared or not); the log
    is untouched."""
    async with MemoryBackend() as backend:
        await _completed_job(backend)
        before = await backend.read_events()
        app = create_app(backend, TokenStore.parse(TOKENS_TEXT))
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dash", headers=headers
        ) as http:
            many = "&".join(f"f{n}=1" for n in range(MAX_FORM_FIELDS + 1))
            for path in ("/login", "/tenants/acme/requeue"):
                assert (await http.post(path, content=many)).status_code == 400
                big = b"q=" + b"a" * MAX_FORM_BYTES
                assert (await http.post(path, content=big)).status_code == 413

                async def streamed() -> AsyncIterator[bytes]:
                    for _ in range(MAX_FORM_BYTES // 1024 + 2):
                        yield b"a" * 1024

                assert (await http.post(path, content=streamed())).status_code == 413
        assert await backend.read_events() == before


async def test_the_filters_that_answered_500_are_400_naming_the_parameter(
    backend: EngineBackend,
) -> None:
    app = create_app(backend, TokenStore.parse(TOKENS_TEXT))
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dash", headers=headers
    ) as http:
        for query, name in [
            ("after=9999-12-31T23:59:59-05:00", "after"),
            ("before=0001-01-01T00:00:00%2B05:00", "before"),
            ("cursor=9999999999999999999", "cursor"),
            ("status=enqueued,bogus", "status"),
            ("type=a%00b", "type"),
        ]:
            for path in ("/jobs", "/tenants/acme/jobs"):
                answer = await http.get(f"{path}?{query}")
                assert answer.status_code == 400, (path, query)
                assert f"{name}: " in answer.text
        assert (await http.get("/jobs?cursor=9223372036854775807")).status_code == 200
