"""A real `dogqueue web` process over real HTTP: an anonymous 200 MiB body is refused
(413) without the server reading it into memory, with or without a Content-Length;
and a token file that cannot be read is one line and exit code 2."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from dogqueue import JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from tests.web.workload import TOKENS_TEXT

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
HUGE = 200 * MIB
#: How much the server may grow while refusing every huge body.
RSS_ALLOWANCE = 8 * MIB


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _dogqueue(*args: str) -> list[str]:
    return [sys.executable, "-m", "dogqueue", *args]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


async def _make_log(path: Path) -> None:
    async with SqliteBackend(path) as backend:
        await backend.enqueue(QueueCtx("acme"), JobMessage(job_type="x", payload_bytes=b""))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A `dogqueue web` process; yields its pid and port once it answers."""
    db, tokens = tmp_path / "queue.db", tmp_path / "tokens"
    asyncio.run(_make_log(db))
    tokens.write_text(TOKENS_TEXT)
    port = _free_port()
    command = _dogqueue("web", "--db", str(db), "--tokens", str(tokens), "--port", str(port))
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=_env(), stdout=output, stderr=output)
    try:
        while _request(port, b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n") is None:
            assert process.poll() is None, log.read_text()
            threading.Event().wait(0.1)  # readiness poll, not a timing assertion
        yield process.pid, port
    finally:
        process.terminate()
        process.wait(timeout=60)


def _request(port: int, head: bytes, body: Iterable[bytes] = ()) -> int | None:
    """Send `head` then `body` (from another thread, stopping when the server closes)
    and return the response's status code (None if nothing listens yet)."""
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=120)
    except ConnectionRefusedError:
        return None
    with conn:
        conn.sendall(head)

        def send() -> None:
            try:
                for chunk in body:
                    conn.sendall(chunk)
            except OSError:
                pass  # refused: the server stopped reading or closed

        sender = threading.Thread(target=send)
        sender.start()
        answer = b""
        while b"\r\n" not in answer:
            data = conn.recv(65_536)
            if not data:
                break
            answer += data
        with contextlib.suppress(OSError):  # the server may have reset it already
            conn.shutdown(socket.SHUT_RDWR)
        sender.join()
    return int(answer.split()[1])


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _plain(size: int) -> Iterator[bytes]:
    chunk = b"a" * MIB
    for _ in range(size // MIB):
        yield chunk


def _chunked(size: int) -> Iterator[bytes]:
    for chunk in _plain(size):
        yield b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    yield b"0\r\n\r\n"


FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"


def test_a_huge_anonymous_body_is_refused_unread(server: tuple[int, int]) -> None:
    pid, port = server
    small = b"token=not-a-valid-token-at-all"
    head = b"POST /login HTTP/1.1\r\nHost: x\r\n" + FORM
    assert _request(port, head + b"Content-Length: %d\r\n\r\n" % len(small), [small]) == 401
    before = _rss(pid)

    declared = head + b"Content-Length: %d\r\n\r\n" % HUGE
    assert _request(port, declared, _plain(HUGE)) == 413
    streamed = head + b"Transfer-Encoding: chunked\r\n\r\n"
    assert _request(port, streamed, _chunked(HUGE)) == 413
    lying = head + b"Content-Length: 10\r\n\r\n"  # declares little, sends more
    assert _request(port, lying, _plain(HUGE)) in (400, 401)

    grown = _rss(pid) - before
    assert grown < RSS_ALLOWANCE, f"the server grew by {grown / MIB:.1f} MiB"
    assert _request(port, b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n") == 200


def test_a_token_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    asyncio.run(_make_log(db))
    missing = tmp_path / "no-such-tokens"
    result = subprocess.run(
        _dogqueue("web", "--db", str(db), "--tokens", str(missing)),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"dogqueue web: tokens: cannot read {str(missing)!r}: No such file or directory\n"
    )
