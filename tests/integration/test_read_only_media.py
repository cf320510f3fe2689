"""Auditing a copy of a WAL-mode SQLite log on read-only media, through the real
`dogqueue` command: `verify` and `jobs` read it (opened immutable), and a copy whose
last commits sit in a `-wal` without its `-shm` is refused with one line, not misread.

As root (CI) a permission bit does not stop writes, so the media is a real read-only
mount (a tmpfs remounted read-only); elsewhere a read-only directory and file."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dogqueue import JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from tests.audit.cli_run import dogqueue


def _run(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


@contextmanager
def read_only_media(directory: Path) -> Iterator[Callable[[], None]]:
    """`directory`, writable until the yielded function makes it read-only media."""
    directory.mkdir()
    if os.geteuid() != 0:

        def make_read_only() -> None:
            _chmod_tree(directory, 0o444)
            directory.chmod(0o555)

        yield make_read_only
        directory.chmod(0o755)
        _chmod_tree(directory, 0o644)
        return
    if not _run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(directory)]):
        pytest.skip("as root only a read-only mount stops writes, and mount is not permitted")
    try:
        yield lambda: _remount_read_only(directory)
    finally:
        _run(["umount", str(directory)])


def _remount_read_only(directory: Path) -> None:
    assert _run(["mount", "-o", "remount,ro", str(directory)])
    with pytest.raises(OSError):
        (directory / "probe").write_bytes(b"")


def _chmod_tree(directory: Path, mode: int) -> None:
    for path in directory.iterdir():
        path.chmod(mode)


async def _write_log(path: Path, jobs: int) -> None:
    async with SqliteBackend(path) as backend:
        for n in range(jobs):
            await backend.enqueue(QueueCtx("acme"), JobMessage(job_type=f"t{n}", payload_bytes=b""))


def test_verify_and_jobs_read_a_wal_log_on_read_only_media(tmp_path: Path) -> None:
    media = tmp_path / "media"
    with read_only_media(media) as make_read_only:
        db = media / "queue.db"
        asyncio.run(_write_log(db, 3))
        assert not Path(f"{db}-wal").exists()  # closed cleanly: everything is in the file
        make_read_only()

        verified = dogqueue("verify", "--db", str(db))
        assert verified.returncode == 0, verified.stderr
        assert "OK, 3 events, 3 jobs" in verified.stdout
        listed = dogqueue("jobs", "--db", str(db))
        assert listed.returncode == 0, listed.stderr
        assert [line.split()[4] for line in listed.stdout.splitlines()[1:]] == ["t0", "t1", "t2"]
        assert sorted(p.name for p in media.iterdir()) == ["queue.db"]


def test_a_wal_copied_without_its_shm_is_refused_not_misread(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    asyncio.run(_write_log(source, 1))
    media = tmp_path / "media"

    async def copy_while_open() -> None:
        # A backend still open keeps its last commits in the -wal file.
        async with SqliteBackend(source) as backend:
            await backend.enqueue(QueueCtx("acme"), JobMessage(job_type="late", payload_bytes=b""))
            shutil.copyfile(source, media / "queue.db")
            shutil.copyfile(f"{source}-wal", media / "queue.db-wal")

    with read_only_media(media) as make_read_only:
        asyncio.run(copy_while_open())
        assert (media / "queue.db-wal").stat().st_size > 0
        make_read_only()
        for command in ("verify", "jobs"):
            answer = dogqueue(command, "--db", str(media / "queue.db"))
            assert answer.returncode == 2, answer.stdout
            assert answer.stderr.count("\n") == 1, answer.stderr
            assert "write-ahead log (queue.db-wal) but no queue.db-shm" in answer.stderr
