"""examples/web_service.py for real: a uvicorn process serving the app and a
`dogqueue worker` process on one SQLite file, driven over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.runtime.helpers import until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def process(
    command: list[str], env: dict[str, str], log: Path, *, exit_codes: tuple[int, ...] = (0,)
) -> Iterator[subprocess.Popen[bytes]]:
    """A child in the examples directory with `env` added to ours, stopped with SIGTERM."""
    with log.open("w") as out:
        child = subprocess.Popen(
            command, cwd=EXAMPLES, env=dict(os.environ, **env), stderr=out, stdout=out
        )
    try:
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    assert child.returncode in exit_codes, log.read_text()


async def test_the_web_service_and_a_worker_process_run_jobs_over_http(tmp_path: Path) -> None:
    db, port = tmp_path / "queue.db", free_port()
    env = {"DOGQUEUE_DB": str(db)}
    web = [sys.executable, "-m", "uvicorn", "web_service:app", "--port", str(port)]
    worker = [sys.executable, "-m", "dogqueue", "worker", "web_service:make_adapter"]
    worker += ["--db", str(db), "--queue", "*"]
    with (
        # uvicorn ends a graceful shutdown by re-raising SIGTERM on itself.
        process(web, env, tmp_path / "web.log", exit_codes=(0, -signal.SIGTERM)),
        process(worker, env, tmp_path / "worker.log"),
    ):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            await until(lambda: serving(http))
            made = (await http.post("/acme/exports", params={"rows": 250})).json()
            result = (await http.get(f"/acme/jobs/{made['job_id']}/result")).json()
            assert result == {"result": {"tenant": "acme", "rows": 250, "attempt": 1}}

            mail = (await http.post("/globex/welcome", params={"email": "a@b.c"})).json()
            result = (await http.get(f"/globex/jobs/{mail['job_id']}/result")).json()
            assert result == {"result": "sent to a@b.c"}

            slow = await http.post("/acme/exports", params={"rows": 10**6, "seconds_per_row": 1})
            slow_id = slow.json()["job_id"]

            async def running() -> bool:
                status = await http.get(f"/acme/jobs/{slow_id}")
                return bool(status.json()["status"] == "leased")

            await until(running)
            assert (await http.delete(f"/acme/jobs/{slow_id}")).json() == {"status": "canceled"}
            refused = await http.get(f"/acme/jobs/{slow_id}/result")
            assert refused.status_code == 409 and "canceled" in refused.text
            assert (await http.get("/acme/jobs/nope")).status_code == 404

            async def stopped_by_worker() -> bool:
                lines = read(tmp_path / "worker.log").splitlines()
                return any(f"job_id={slow_id}" in x and "outcome=canceled" in x for x in lines)

            await until(stopped_by_worker)  # another process's cancel reached the job


async def serving(http: httpx.AsyncClient) -> bool:
    """Whether the app answers yet."""
    try:
        return (await http.get("/docs")).status_code == 200
    except httpx.TransportError:
        return False


def read(path: Path) -> str:
    return path.read_text()
